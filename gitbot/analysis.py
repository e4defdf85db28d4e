"""Canary analysis: PromQL on Istio's standard metrics -> per-check results -> one verdict.

This module owns what is asked of Prometheus (`build_queries`), how the answers are judged (`judge`),
the observed canary traffic share, the p99 series for a chart, and the Markdown/Mermaid rendering of the
evidence. It does no I/O of its own: the only outside call is through the `gitbot.ports.Metrics` protocol
passed in. The rule it enforces: no data is not a pass. Missing samples, non-finite numbers (NaN, +Inf,
-Inf: what a query dividing by zero answers), too few requests, a query error or an unreachable Prometheus
give `inconclusive`, never `fail`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from gitbot.domain import Analysis, CheckResult, Verdict
from gitbot.errors import ConfigError, MetricsError
from gitbot.ports import Metrics

CheckName = Literal["success-rate", "latency-p99", "custom"]
Side = Literal["canary", "stable"]
SIDES: tuple[Side, Side] = ("canary", "stable")

REQUESTS = "requests"
_PLACEHOLDERS = ("{namespace}", "{canary}", "{stable}", "{window}")
# Thresholds each check understands; anything else is a configuration mistake, not a silent no-op.
_ALLOWED: dict[str, frozenset[str]] = {
    "success-rate": frozenset({"min", "max_drop"}),
    "latency-p99": frozenset({"max", "max_ratio"}),
    "custom": frozenset({"min", "max"}),
}


@dataclass(frozen=True)
class CheckSpec:
    """One check and its thresholds.

    success-rate (percent non-5xx of the canary): `min` (absolute percent) and/or `max_drop` (at most this
    many percentage points below GA). latency-p99 (milliseconds): `max` and/or `max_ratio` (canary p99 at
    most this multiple of GA p99). custom: `query` (PromQL with `{namespace}`, `{canary}`, `{stable}`,
    `{window}` placeholders) whose single value must be >= `min` and/or <= `max`; `label` names it in the
    evidence (default `custom #N`).
    """

    name: CheckName
    min: float | None = None
    max: float | None = None
    max_ratio: float | None = None
    max_drop: float | None = None
    query: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.name not in _ALLOWED:
            raise ConfigError(
                f"unknown check {self.name!r}; expected one of: {', '.join(sorted(_ALLOWED))}",
                where="analysis.checks",
            )
        given = {key for key in ("min", "max", "max_ratio", "max_drop") if getattr(self, key) is not None}
        if not given:
            raise ConfigError(
                f"check {self.name!r} has no threshold; give one of: {', '.join(sorted(_ALLOWED[self.name]))}",
                where="analysis.checks",
            )
        extra = given - _ALLOWED[self.name]
        if extra:
            raise ConfigError(
                f"check {self.name!r} does not take {', '.join(sorted(extra))}; "
                f"it takes: {', '.join(sorted(_ALLOWED[self.name]))}",
                where="analysis.checks",
            )
        for key in given:
            value = getattr(self, key)
            if not math.isfinite(value):
                raise ConfigError(f"check {self.name!r}: {key} must be a finite number", where="analysis.checks")
        if self.max_ratio is not None and self.max_ratio <= 0:
            raise ConfigError(f"check {self.name!r}: max_ratio must be > 0", where="analysis.checks")
        if self.max_drop is not None and self.max_drop < 0:
            raise ConfigError(f"check {self.name!r}: max_drop must be >= 0", where="analysis.checks")
        if (self.name == "custom") != bool(self.query and self.query.strip()):
            problem = "needs a query" if self.name == "custom" else "takes no query (only custom does)"
            raise ConfigError(f"check {self.name!r} {problem}", where="analysis.checks")

    @property
    def compares(self) -> bool:
        """Whether judging this check needs the GA side."""
        if self.name == "custom":
            return "{stable}" in (self.query or "")
        return self.max_ratio is not None or self.max_drop is not None

    def absolute(self) -> CheckSpec | None:
        """This check without its comparisons to GA; None when nothing absolute is left."""
        if self.name == "custom":
            return None if self.compares else self
        if self.min is None and self.max is None:
            return None
        return replace(self, max_ratio=None, max_drop=None)


@dataclass(frozen=True)
class AnalysisSpec:
    """What to analyse: the two workloads in one namespace, the window, the request minimum and checks."""

    namespace: str
    stable_workload: str
    canary_workload: str
    window: timedelta
    min_requests: int
    checks: tuple[CheckSpec, ...]
    reporter: str = "destination"

    def __post_init__(self) -> None:
        seconds = self.window.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise ConfigError(
                f"analysis window must be a whole number of seconds >= 1s, got {self.window}",
                where="analysis.window",
            )
        if self.min_requests < 0:
            raise ConfigError("analysis minRequests must be >= 0", where="analysis.minRequests")
        for field, value in (
            ("namespace", self.namespace),
            ("stableWorkload", self.stable_workload),
            ("canaryWorkload", self.canary_workload),
            ("reporter", self.reporter),
        ):
            # Values go into PromQL label matchers; a quote or backslash would change the query.
            if not value or any(ch in value for ch in '"\\\n{}'):
                raise ConfigError(f"analysis {field} {value!r} is empty or has quotes/braces", where=field)

    @property
    def needs_stable(self) -> bool:
        """Whether any check compares with GA (then GA must also reach `min_requests`)."""
        return any(check.compares for check in self.checks)

    def canary_only(self) -> AnalysisSpec:
        """The analysis without comparisons to GA (for a canary at 100 percent, when GA gets no traffic)."""
        kept = tuple(c for c in (check.absolute() for check in self.checks) if c is not None)
        return replace(self, checks=kept)


def promql_duration(window: timedelta) -> str:
    """A PromQL range duration for `window` (whole seconds), e.g. `5m`, `90s`, `1h`."""
    seconds = int(window.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _selector(spec: AnalysisSpec, side: Side, extra: str = "") -> str:
    workload = spec.canary_workload if side == "canary" else spec.stable_workload
    labels = (
        f'reporter="{spec.reporter}",destination_workload_namespace="{spec.namespace}",'
        f'destination_workload="{workload}"'
    )
    return "{" + labels + extra + "}"


def requests_query(spec: AnalysisSpec, side: Side, window: str) -> str:
    return f"sum(increase(istio_requests_total{_selector(spec, side)}[{window}]))"


def success_rate_query(spec: AnalysisSpec, side: Side, window: str) -> str:
    # `or vector(0)`: no 5xx series at all means no errors, not "no data"; the total still decides that.
    server_errors = _selector(spec, side, ',response_code=~"5.."')
    errors = f"sum(increase(istio_requests_total{server_errors}[{window}]))"
    return f"100 * (1 - ({errors} or vector(0)) / {requests_query(spec, side, window)})"


def latency_p99_query(spec: AnalysisSpec, side: Side, window: str) -> str:
    buckets = f"istio_request_duration_milliseconds_bucket{_selector(spec, side)}"
    return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{window}])))"


def custom_query(spec: AnalysisSpec, query: str) -> str:
    # Plain replacement, not str.format: PromQL label selectors use braces themselves.
    values = {
        "{namespace}": spec.namespace,
        "{canary}": spec.canary_workload,
        "{stable}": spec.stable_workload,
        "{window}": promql_duration(spec.window),
    }
    for placeholder in _PLACEHOLDERS:
        query = query.replace(placeholder, values[placeholder])
    return query


def share_query(spec: AnalysisSpec, window: str | None = None) -> str:
    """Percent of the two workloads' requests that reached the canary over `window` (default: the spec's)."""
    window = window or promql_duration(spec.window)
    canary = f"({requests_query(spec, 'canary', window)} or vector(0))"
    stable = f"({requests_query(spec, 'stable', window)} or vector(0))"
    return f"100 * {canary} / ({canary} + {stable})"


def query_key(index: int, check: CheckSpec, side: Side) -> str:
    """The key of one query in `build_queries`: `requests:<side>` or `<index>:<check name>:<side>`."""
    return f"{index}:{check.name}:{side}"


def build_queries(spec: AnalysisSpec) -> dict[str, str]:
    """Every instant query one analysis needs, keyed for `judge`, in the order they should be asked.

    Request counts come first. A custom check is asked once (key side `canary`); the built-in checks are
    asked for both sides when they compare with GA, else for the canary only.
    """
    window = promql_duration(spec.window)
    queries = {f"{REQUESTS}:{side}": requests_query(spec, side, window) for side in SIDES}
    for index, check in enumerate(spec.checks):
        if check.name == "custom":
            queries[query_key(index, check, "canary")] = custom_query(spec, check.query or "")
            continue
        build = success_rate_query if check.name == "success-rate" else latency_p99_query
        sides: tuple[Side, ...] = SIDES if check.compares else ("canary",)
        for side in sides:
            queries[query_key(index, check, side)] = build(spec, side, window)
    return queries


def _clean(value: float | None) -> float | None:
    """A sample as data: None, NaN and the infinities are no data (whatever the adapter let through)."""
    return None if value is None or not math.isfinite(value) else value


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"


def threshold_text(check: CheckSpec) -> str:
    """The check's thresholds as a person reads them, e.g. `>= 99%, >= GA - 1pp`."""
    parts: list[str] = []
    unit = {"success-rate": "%", "latency-p99": " ms", "custom": ""}[check.name]
    if check.min is not None:
        parts.append(f">= {_fmt(check.min)}{unit}")
    if check.max is not None:
        parts.append(f"<= {_fmt(check.max)}{unit}")
    if check.max_drop is not None:
        parts.append(f">= GA - {_fmt(check.max_drop)}pp")
    if check.max_ratio is not None:
        parts.append(f"<= {_fmt(check.max_ratio)}x GA")
    return ", ".join(parts)


def _combine(verdicts: Sequence[Verdict]) -> Verdict:
    if "fail" in verdicts:
        return "fail"
    if not verdicts or "inconclusive" in verdicts:
        return "inconclusive"
    return "pass"


def _judge_check(check: CheckSpec, canary: float | None, stable: float | None) -> tuple[Verdict, str]:
    """One check's verdict and a short reason. A failed bound with data fails even if another lacks data."""
    if canary is None:
        return "inconclusive", "no canary data"
    outcomes: list[tuple[Verdict, str]] = []
    if check.min is not None:
        ok = canary >= check.min
        outcomes.append(("pass" if ok else "fail", f"{_fmt(canary)} {'>=' if ok else '<'} {_fmt(check.min)}"))
    if check.max is not None:
        ok = canary <= check.max
        outcomes.append(("pass" if ok else "fail", f"{_fmt(canary)} {'<=' if ok else '>'} {_fmt(check.max)}"))
    if check.max_drop is not None:
        if stable is None:
            outcomes.append(("inconclusive", "no GA data"))
        else:
            drop = stable - canary
            ok = drop <= check.max_drop
            where = f"{_fmt(drop)}pp below GA" if drop > 0 else f"{_fmt(-drop)}pp above GA"
            outcomes.append(("pass" if ok else "fail", where))
    if check.max_ratio is not None:
        if stable is None:
            outcomes.append(("inconclusive", "no GA data"))
        elif stable <= 0:
            # A zero GA latency gives no meaningful ratio; judging on it would be arbitrary.
            outcomes.append(("inconclusive", "GA value is 0"))
        else:
            ratio = canary / stable
            ok = ratio <= check.max_ratio
            outcomes.append(("pass" if ok else "fail", f"{ratio:.2f}x GA"))
    verdict = _combine([v for v, _ in outcomes])
    chosen = [text for v, text in outcomes if v == verdict] or [text for _, text in outcomes]
    return verdict, "; ".join(chosen)


def judge(
    spec: AnalysisSpec,
    samples: Mapping[str, float | None],
    window_end: datetime,
    error: str | None = None,
) -> Analysis:
    """Turn the answers to `build_queries(spec)` into an Analysis.

    `samples` maps query keys to values (missing key, None, NaN or an infinity: no data). `error` is a one-line
    description of a failed query; with it every check is inconclusive. Request counts are judged first:
    if a side that the checks need has fewer than `min_requests`, every check is inconclusive.
    """
    window_start = window_end - spec.window
    queries = build_queries(spec)
    value = {key: _clean(samples.get(key)) for key in queries}
    req_canary, req_stable = value[f"{REQUESTS}:canary"], value[f"{REQUESTS}:stable"]

    gate_problems: list[str] = []
    if error is not None:
        gate_problems.append(error)
    else:
        for side, count in (("canary", req_canary), ("GA", req_stable)):
            if side == "GA" and not spec.needs_stable:
                continue
            if count is None:
                gate_problems.append(f"no {side} requests recorded")
            elif count < spec.min_requests:
                gate_problems.append(f"{side} has {count:.0f} requests, needs {spec.min_requests}")
    gate: Verdict = "inconclusive" if gate_problems else "pass"
    results = [
        CheckResult(
            name=REQUESTS,
            verdict=gate,
            canary=req_canary,
            stable=req_stable,
            threshold=f">= {spec.min_requests} each" if spec.needs_stable else f">= {spec.min_requests} canary",
            detail="; ".join(gate_problems),
        )
    ]
    for index, check in enumerate(spec.checks):
        canary = value.get(query_key(index, check, "canary"))
        stable = value.get(query_key(index, check, "stable"))
        if gate_problems:
            verdict: Verdict = "inconclusive"
            detail = "not judged: " + "; ".join(gate_problems)
        else:
            verdict, detail = _judge_check(check, canary, stable)
        results.append(
            CheckResult(
                name=check.name if check.name != "custom" else check.label or f"custom #{index + 1}",
                verdict=verdict,
                canary=canary,
                stable=stable,
                threshold=threshold_text(check),
                detail=detail,
            )
        )
    verdict = _combine([r.verdict for r in results])
    return Analysis(
        verdict=verdict,
        checks=tuple(results),
        window_start=window_start,
        window_end=window_end,
        summary=summarize(verdict, results),
    )


def summarize(verdict: Verdict, results: Sequence[CheckResult]) -> str:
    """A short reason for a commit subject, e.g. `p99 2.31x GA` or `success-rate 91.2 < 99`."""
    picked = [r for r in results if r.verdict == verdict and r.detail] if verdict != "pass" else []
    if not picked:
        return {"pass": "all checks passed", "fail": "a check failed", "inconclusive": "not enough data"}[verdict]
    first = picked[0]
    name = "p99" if first.name == "latency-p99" else first.name
    return first.detail if first.name == REQUESTS else f"{name} {first.detail}"


def run_analysis(spec: AnalysisSpec, metrics: Metrics, at: datetime) -> Analysis:
    """Ask Prometheus every query of `spec` for the window ending at `at` and judge the answers.

    Never raises MetricsError: the first failed query stops the run (an unreachable server would fail
    every query the same way, each after its timeout) and the analysis is inconclusive with that error.
    """
    if at.tzinfo is None:
        raise ValueError("run_analysis needs a timezone-aware time")
    samples: dict[str, float | None] = {}
    for key, query in build_queries(spec).items():
        try:
            samples[key] = metrics.instant(query, at)
        except MetricsError as exc:
            return judge(spec, samples, at, error=f"query failed: {exc.one_line()}")
    return judge(spec, samples, at)


def observed_canary_share(spec: AnalysisSpec, metrics: Metrics, at: datetime) -> float | None:
    """Percent of requests to the two workloads that went to the canary over the window ending at `at`.

    None when neither side had requests, or Prometheus could not answer (the step cannot be confirmed).
    """
    try:
        return _clean(metrics.instant(share_query(spec), at))
    except MetricsError:
        return None


Series = list[tuple[float, float]]


def _chart_range(step: timedelta) -> tuple[float, str]:
    seconds = max(step.total_seconds(), 1.0)
    return seconds, promql_duration(timedelta(seconds=max(int(seconds), 60)))


def share_applied_at(
    spec: AnalysisSpec,
    metrics: Metrics,
    weight: float,
    tolerance: float,
    since: datetime,
    at: datetime,
    step: timedelta = timedelta(minutes=1),
) -> datetime | None:
    """The first moment in [since, at] from which the canary share stayed within `tolerance` of `weight`.

    Each point is the share over the preceding `max(step, 1m)`, every `step`. None when the share at `at`
    is not within tolerance, there is no data, or Prometheus could not answer: the step has not (yet)
    visibly taken effect. The caller passes the result as `CanaryState.applied_at`.
    """
    seconds, window = _chart_range(step)
    try:
        points = metrics.series(share_query(spec, window), since, at, seconds)
    except MetricsError:
        return None
    applied: float | None = None
    for stamp, share in reversed(points):
        if not abs(share - weight) <= tolerance:
            break
        applied = stamp
    if applied is None or not points or points[-1][0] < at.timestamp() - seconds:
        return None
    return datetime.fromtimestamp(applied, UTC)


def latency_series(
    spec: AnalysisSpec, metrics: Metrics, start: datetime, end: datetime, step: timedelta
) -> tuple[Series, Series]:
    """p99 latency of canary and GA from `start` to `end` every `step`, for a chart.

    Each point is the p99 over the preceding `max(step, 1m)`, so neighbouring points do not share data.
    Prometheus failing gives two empty series (the chart is left out, the verdict does not depend on it).
    """
    seconds, window = _chart_range(step)
    out: list[Series] = []
    for side in SIDES:
        try:
            points = metrics.series(latency_p99_query(spec, side, window), start, end, seconds)
        except MetricsError:
            return [], []
        out.append([(t, v) for t, v in points if math.isfinite(v)])
    return out[0], out[1]


def _value_text(name: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "no data"
    if name == REQUESTS:
        return f"{value:.0f}"
    if name == "success-rate":
        return f"{value:.2f}%"
    if name == "latency-p99":
        return f"{value:.1f} ms"
    return _fmt(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def render_evidence(analysis: Analysis) -> str:
    """A Markdown table of the checks: name, canary, GA, threshold, verdict (with reason), window."""
    minutes = (analysis.window_end - analysis.window_start).total_seconds() / 60
    window = f"{minutes:g}m to {_when(analysis.window_end)}"
    lines = [
        "| Check | Canary | GA | Threshold | Verdict | Window |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for check in analysis.checks:
        verdict = check.verdict + (f" ({check.detail})" if check.detail else "")
        cells = (
            check.name,
            _value_text(check.name, check.canary),
            _value_text(check.name, check.stable) if check.stable is not None or check.name == REQUESTS else "-",
            check.threshold,
            verdict,
            window,
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    lines.append(f"**Verdict: {analysis.verdict}** ({_cell(analysis.summary)})")
    return "\n".join(lines) + "\n"


MAX_CHART_POINTS = 60


def _thin(times: list[float]) -> list[float]:
    if len(times) <= MAX_CHART_POINTS:
        return times
    stride = math.ceil(len(times) / MAX_CHART_POINTS)
    return times[::stride]


def render_latency_chart(canary_series: Series, stable_series: Series) -> str:
    """A fenced Mermaid `xychart-beta` block: canary p99 (first line) and GA p99 (second line) in ms.

    Points are the timestamps both series have (a line cannot have holes); when only one series has
    data, only that line is drawn. Empty string when there is nothing to draw.
    """
    canary, stable = dict(canary_series), dict(stable_series)
    # A Mermaid line cannot have holes: plot the common timestamps when both sides have data.
    times = _thin(sorted(set(canary) & set(stable) if canary and stable else set(canary) | set(stable)))
    if not times:
        return ""
    lines_data = [(label, data) for label, data in (("canary", canary), ("GA", stable)) if data]
    top = max(data[t] for _, data in lines_data for t in times)
    # The x-axis is categorical: Mermaid draws equal labels at one place, so points under a minute apart
    # (a window under 20 minutes) carry their seconds.
    fmt = "%H:%M" if len({int(t) // 60 for t in times}) == len(times) else "%H:%M:%S"
    labels = ", ".join(f'"{datetime.fromtimestamp(t, UTC).strftime(fmt)}"' for t in times)
    names = " / ".join(label for label, _ in lines_data)
    out = [
        "```mermaid",
        "xychart-beta",
        f'    title "p99 latency (ms): {names}"',
        f"    x-axis [{labels}]",
        f'    y-axis "p99 ms" 0 --> {math.ceil(top * 1.1) if top > 0 else 1}',
    ]
    for _, data in lines_data:
        out.append("    line [" + ", ".join(f"{data[t]:.1f}" for t in times) + "]")
    out.append("```")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class GaReference:
    """GA's own figures for a canary at 100 percent, when GA takes no traffic: the window before the step.

    `window_end`: when the step to 100 percent landed (from git); None when history does not say.
    `samples`: the GA side's answers (`requests:stable` and each comparing check's `<i>:<name>:stable`).
    `error`: a failed query, one line.
    """

    window_end: datetime | None
    samples: Mapping[str, float | None]
    error: str | None = None


def reference_queries(spec: AnalysisSpec) -> dict[str, str]:
    """The GA side of `build_queries(spec)`: what a GA reference is asked for."""
    return {key: query for key, query in build_queries(spec).items() if key.endswith(":stable")}


def read_ga_reference(spec: AnalysisSpec, metrics: Metrics, before: datetime | None) -> GaReference:
    """GA's figures over the window ending at `before` (the step to 100 percent); never raises MetricsError."""
    if before is None:
        return GaReference(None, {})
    samples: dict[str, float | None] = {}
    for key, query in reference_queries(spec).items():
        try:
            samples[key] = metrics.instant(query, before)
        except MetricsError as exc:
            return GaReference(before, samples, f"query failed: {exc.one_line()}")
    return GaReference(before, samples)


def _reference_problem(spec: AnalysisSpec, reference: GaReference) -> str | None:
    """Why the GA reference cannot be compared with, or None when it can."""
    if reference.window_end is None:
        return "no GA figures (GA takes no traffic at 100% and history has no step to 100% to look before)"
    if reference.error is not None:
        return f"no GA figures from before the step to 100%: {reference.error}"
    count = _clean(reference.samples.get(f"{REQUESTS}:stable"))
    if count is None:
        return f"no GA requests in the {promql_duration(spec.window)} before the step to 100%"
    if count < spec.min_requests:
        return f"GA had {count:.0f} requests before the step to 100%, needs {spec.min_requests}"
    return None


def judge_full_weight(
    spec: AnalysisSpec,
    samples: Mapping[str, float | None],
    window_end: datetime,
    reference: GaReference,
    error: str | None = None,
) -> Analysis:
    """Judge a canary that takes all traffic: its figures now against GA's from before the step to 100%.

    Only the canary's request count gates the analysis. A comparison with GA is judged on the reference;
    without a usable one it is inconclusive (its absolute bounds still judge). A custom query that names
    `{stable}` mixes both sides at one moment and cannot be judged at 100%: inconclusive, never dropped.
    """
    queries = build_queries(spec)
    value = {key: _clean(samples.get(key)) for key in queries if not key.endswith(":stable")}
    problem = _reference_problem(spec, reference)
    ga = {key: None if problem else _clean(reference.samples.get(key)) for key in queries if key.endswith(":stable")}
    req_canary = value[f"{REQUESTS}:canary"]
    reference_note = ""
    if spec.needs_stable and problem is None and reference.window_end is not None:
        reference_note = (
            f"GA figures: {promql_duration(spec.window)} to {_when(reference.window_end)}, before the step to 100%"
        )
    gate_problems: list[str] = []
    if error is not None:
        gate_problems.append(error)
    elif req_canary is None:
        gate_problems.append("no canary requests recorded")
    elif req_canary < spec.min_requests:
        gate_problems.append(f"canary has {req_canary:.0f} requests, needs {spec.min_requests}")
    results = [
        CheckResult(
            name=REQUESTS,
            verdict="inconclusive" if gate_problems else "pass",
            canary=req_canary,
            stable=_clean(reference.samples.get(f"{REQUESTS}:stable")) if spec.needs_stable else None,
            threshold=f">= {spec.min_requests} canary" + (", GA before 100%" if spec.needs_stable else ""),
            detail="; ".join(gate_problems) or reference_note,
        )
    ]
    for index, check in enumerate(spec.checks):
        canary = value.get(query_key(index, check, "canary"))
        stable = ga.get(query_key(index, check, "stable"))
        verdict: Verdict
        if gate_problems:
            verdict, detail = "inconclusive", "not judged: " + "; ".join(gate_problems)
        elif check.name == "custom" and check.compares:
            verdict, detail = "inconclusive", "compares with GA ({stable}), which takes no traffic at 100%"
        else:
            verdict, detail = _judge_check(check, canary, stable)
            if check.compares and problem is not None and verdict == "inconclusive":
                detail = problem
            elif check.compares and problem is None:
                detail = re.sub(r"(x GA|pp (?:below|above) GA)\b", r"\1 before 100%", detail)
        results.append(
            CheckResult(
                name=check.name if check.name != "custom" else check.label or f"custom #{index + 1}",
                verdict=verdict,
                canary=canary,
                stable=stable,
                threshold=threshold_text(check),
                detail=detail,
            )
        )
    verdict = _combine([r.verdict for r in results])
    return Analysis(
        verdict=verdict,
        checks=tuple(results),
        window_start=window_end - spec.window,
        window_end=window_end,
        summary=summarize(verdict, results),
    )


def run_full_weight_analysis(spec: AnalysisSpec, metrics: Metrics, at: datetime, reference: GaReference) -> Analysis:
    """`run_analysis` for a canary at 100 percent: the canary's queries now, GA's from `reference`."""
    if at.tzinfo is None:
        raise ValueError("run_full_weight_analysis needs a timezone-aware time")
    samples: dict[str, float | None] = {}
    for key, query in build_queries(spec).items():
        if key.endswith(":stable"):
            continue
        try:
            samples[key] = metrics.instant(query, at)
        except MetricsError as exc:
            return judge_full_weight(spec, samples, at, reference, error=f"query failed: {exc.one_line()}")
    return judge_full_weight(spec, samples, at, reference)
