"""How `gitbot status` and `gitbot analyze` show a canary to a person, in the manner of `kubectl argo
rollouts get rollout`: status, why it holds, step k/n, committed weight and observed share, the stable and
canary images, and one row per check with a mark. Pure text from a `CanaryReport`; it reads nothing itself.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from gitbot import sequential
from gitbot.domain import CheckResult
from gitbot.manual import CanaryReport

MARKS = {"pass": "✔", "fail": "✖", "inconclusive": "?"}
_LABEL = 15


def _field(label: str, value: str) -> str:
    return f"{label + ':':<{_LABEL}}{value}"


def _duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def status_of(report: CanaryReport) -> str:
    """One word with its mark, as Argo Rollouts shows a rollout: Paused, Degraded, Healthy, Progressing."""
    decision = report.decision
    analysis = report.observation.analysis
    if report.paused:
        return "॥ Paused"
    if decision is not None and decision.action in ("rollback", "not-applied"):
        return "✖ Degraded"
    if analysis is not None and analysis.verdict == "fail":
        return "✖ Degraded"
    if decision is not None and decision.action in ("complete", "promote"):
        return "✔ Healthy"
    if report.weight == 0:
        return "◌ Not started" if decision is None or decision.action != "hold" else "॥ Holding at 0%"
    return "◌ Progressing"


def step_text(report: CanaryReport) -> str:
    """`2/3 (10, 60, 100)`: the step the committed weight is at, of the canary's steps."""
    steps = report.steps
    listed = f" ({', '.join(str(s) for s in steps)})" if steps else ""
    if report.weight == 0:
        return f"0/{len(steps)}{listed}"
    if report.weight in steps:
        return f"{steps.index(report.weight) + 1}/{len(steps)}{listed}"
    return f"between steps{listed}, set by hand"


def _share(report: CanaryReport) -> str:
    share = report.observation.share
    if share is None or not math.isfinite(share):
        return "unknown (no traffic to observe)"
    return f"{share:.1f} (observed share of requests)"


def _value(check: CheckResult, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if check.name == "requests":
        return f"{value:.0f}"
    if check.name == "success-rate":
        return f"{value:.2f}%"
    if check.name == "latency-p99" or (check.sequential and check.name == "latency"):
        return f"{value:.1f} ms"
    if check.sequential and check.name == "error-rate":
        return f"{value:.3g}%"
    return f"{value:.4g}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _evidence(check: CheckResult) -> str:
    """A sequential check's e-value and effect (canary / GA), e.g. `e 31.6, effect 2.00x`; empty otherwise."""
    if not check.sequential:
        return ""
    e_value, effect = _finite(check.e_value), _finite(check.effect)
    return f"e {'-' if e_value is None else f'{e_value:.3g}'}, effect {'-' if effect is None else f'{effect:.2f}x'}"


def check_rows(checks: tuple[CheckResult, ...]) -> list[str]:
    """One aligned row per check: mark and verdict, name, canary and GA values, threshold, reason.

    When there are sequential checks, a column after GA's value gives their e-value and effect; at 100 percent
    GA's value is marked as from before the step to 100%.
    """
    with_evidence = any(c.sequential for c in checks)
    table = [
        (
            f"{MARKS.get(c.verdict, '?')} {c.verdict}",
            c.name,
            f"canary {_value(c, c.canary)}",
            f"GA {_value(c, c.stable)}" + (" before 100%" if c.stable_period else ""),
            *((_evidence(c),) if with_evidence else ()),
            c.threshold,
            c.detail,
        )
        for c in checks
    ]
    last = len(table[0]) - 1 if table else 0
    widths = [max((len(row[i]) for row in table), default=0) for i in range(last)]
    return [
        "  " + "  ".join(cell.ljust(widths[i]) if i < last else cell for i, cell in enumerate(row)).rstrip()
        for row in table
    ]


def _moment(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def check_json(check: CheckResult) -> dict[str, object]:
    """One check as `gitbot analyze --json` gives it. A sequential check adds its e-value, anytime-valid p-value,
    effect (canary / GA), requests on each side and since when they are counted; at 100 percent GA's period
    before the step to 100% (`stable_period`, else null)."""
    out: dict[str, object] = {
        "name": check.name,
        "verdict": check.verdict,
        "canary": check.canary,
        "stable": check.stable,
        "threshold": check.threshold,
        "detail": check.detail,
    }
    if not check.sequential:
        return out
    e_value = _finite(check.e_value)
    canary_requests, stable_requests = (_finite(count) for count in check.requests)
    out.update(
        sequential=True,
        e_value=e_value,
        p_value=sequential.p_value(e_value) if e_value is not None and e_value > 0 else None,
        effect=_finite(check.effect),
        requests={"canary": canary_requests, "stable": stable_requests},
        since=_moment(check.since),
        stable_period=[_moment(moment) for moment in check.stable_period] if check.stable_period else None,
    )
    return out


def render_canary(report: CanaryReport, policy: str) -> list[str]:
    """The canary as a block of `Label: value` lines, then its checks."""
    lines = [
        _field("Name", report.name),
        _field("Policy", policy),
        _field("Route", report.route),
        _field("Status", status_of(report)),
    ]
    if report.paused:
        lines.append(_field("Paused", report.paused))
    if report.decision is not None:
        lines.append(_field("Message", report.decision.reason))
    lines += [
        _field("Step", step_text(report)),
        _field("SetWeight", str(report.weight)),
        _field("ActualWeight", _share(report) if report.weight else "0"),
    ]
    if report.dwell_left:
        lines.append(_field("Dwell left", _duration(report.dwell_left)))
    images = [f"{image} (stable)" for image in report.stable_images]
    images += [f"{image} (canary)" for image in report.canary_images]
    for index, image in enumerate(images or ["unknown"]):
        lines.append(_field("Images", image) if index == 0 else " " * _LABEL + image)
    analysis = report.observation.analysis
    if analysis is None:
        lines.append(_field("Analysis", "not run: the canary takes no traffic (0%)"))
        return lines
    minutes = (analysis.window_end - analysis.window_start).total_seconds() / 60
    window = f"{minutes:g}m to {analysis.window_end.astimezone(UTC):%Y-%m-%d %H:%M:%SZ}"
    summary = f" ({analysis.summary})" if analysis.summary else ""
    lines.append(_field("Analysis", f"{MARKS[analysis.verdict]} {analysis.verdict}{summary}, {window}"))
    lines += check_rows(analysis.checks)
    return lines
