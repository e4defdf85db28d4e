"""Canary analysis: figures asked of a metrics source -> per-check results -> one verdict.

This module owns which figures are asked of the metrics source (`build_queries`, typed `gitbot.ports.Measure`
values; no query language), how the answers are judged (`judge`), the observed canary traffic share, the p99
series for a chart, and the Markdown/Mermaid rendering of the evidence. It does no I/O of its own: the only
outside call is through the `gitbot.ports.Metrics` protocol passed in. The rule it enforces: no data is not a
pass. Missing samples, non-finite numbers (NaN, +Inf, -Inf: what a query dividing by zero answers), too few
requests, a query error or an unreachable metrics source give `inconclusive`, never `fail`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from gitbot import sequential
from gitbot.domain import Analysis, CheckResult, Verdict
from gitbot.errors import MetricsError
from gitbot.ports import (
    CanaryShare,
    CustomQuery,
    LatencyQuantile,
    Measure,
    Metrics,
    Requests,
    SuccessRate,
    Workload,
)

CheckName = Literal["success-rate", "latency-p99", "custom", "error-rate", "latency"]
Test = Literal["threshold", "sequential"]
Side = Literal["canary", "stable"]
SIDES: tuple[Side, Side] = ("canary", "stable")

REQUESTS = "requests"
# Checks judged by an anytime-valid sequential test (gitbot.sequential) on the counts since the step landed.
SEQUENTIAL: frozenset[str] = frozenset({"error-rate", "latency"})
DEFAULT_ALPHA = 0.05
P99 = 0.99


@dataclass(frozen=True)
class CheckSpec:
    """One check and its thresholds.

    success-rate (percent non-5xx of the canary): `min` (absolute percent) and/or `max_drop` (at most this
    many percentage points below GA). latency-p99 (milliseconds): `max` and/or `max_ratio` (canary p99 at
    most this multiple of GA p99). custom: `query` (in the metrics source's language, with `{namespace}`,
    `{canary}`, `{stable}`, `{window}` placeholders) whose single value must be >= `min` and/or <= `max`;
    `label` names it in the evidence (default `custom #N`).

    error-rate and latency are sequential (`test: sequential`, the default for them): the canary is compared
    with GA on every request since the step landed, and fails once the evidence of a regression reaches
    1/`alpha` (default 0.05). `margin` (default 0) is the relative worsening allowed: 0.5 lets the canary's
    error rate (or its share of requests slower than any latency bucket bound) be up to 1.5 x GA's.

    A plain value: the policy loader (`gitbot.config`) is the one place that refuses a check it cannot run.
    """

    name: CheckName
    min: float | None = None
    max: float | None = None
    max_ratio: float | None = None
    max_drop: float | None = None
    query: str | None = None
    label: str | None = None
    test: Test | None = None
    alpha: float | None = None
    margin: float | None = None

    @property
    def sequential(self) -> bool:
        """Whether this check is an anytime-valid sequential test (judged on the counts since the step)."""
        return self.name in SEQUENTIAL

    @property
    def alpha_value(self) -> float:
        return DEFAULT_ALPHA if self.alpha is None else self.alpha

    @property
    def margin_value(self) -> float:
        return 0.0 if self.margin is None else self.margin

    @property
    def compares(self) -> bool:
        """Whether judging this check needs the GA side."""
        if self.sequential:
            return True
        if self.name == "custom":
            return "{stable}" in (self.query or "")
        return self.max_ratio is not None or self.max_drop is not None

    @property
    def judged_at_full_weight(self) -> bool:
        """Whether this check can reach a verdict with the canary at 100 percent (see `judge_full_weight`):
        all but a custom query that names `{stable}`, which mixes both sides at one moment."""
        return not (self.name == "custom" and self.compares)


@dataclass(frozen=True)
class AnalysisSpec:
    """What to analyse: the two workloads in one namespace, the window, the request minimum and checks.

    A plain value, as the policy loader (`gitbot.config`) validated it: a window of whole seconds, names that
    are fit for a metrics source's label matchers.
    """

    namespace: str
    stable_workload: str
    canary_workload: str
    window: timedelta
    min_requests: int
    checks: tuple[CheckSpec, ...]
    reporter: str = "destination"

    @property
    def needs_stable(self) -> bool:
        """Whether any check compares with GA (then GA must also reach `min_requests`)."""
        return any(check.compares for check in self.checks)


def window_text(window: timedelta) -> str:
    """A window as the evidence names it (whole seconds), e.g. `5m`, `90s`, `1h`."""
    seconds = int(window.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def share_measure(spec: AnalysisSpec) -> CanaryShare:
    """The canary's share of the two workloads' requests."""
    return CanaryShare(workload(spec, "canary"), workload(spec, "stable"))


def query_key(index: int, check: CheckSpec, side: Side) -> str:
    """The key of one query in `build_queries`: `requests:<side>` or `<index>:<check name>:<side>`."""
    return f"{index}:{check.name}:{side}"


def build_queries(spec: AnalysisSpec) -> dict[str, Measure]:
    """Every figure one analysis asks over its window, keyed for `judge`, in the order they should be asked.

    Request counts come first. A custom check is asked once (key side `canary`); the built-in checks are
    asked for both sides when they compare with GA, else for the canary only.
    """
    queries: dict[str, Measure] = {f"{REQUESTS}:{side}": Requests(workload(spec, side)) for side in SIDES}
    for index, check in enumerate(spec.checks):
        if check.sequential:
            continue
        if check.name == "custom":
            custom = CustomQuery(check.query or "", workload(spec, "canary"), workload(spec, "stable"))
            queries[query_key(index, check, "canary")] = custom
            continue
        sides: tuple[Side, ...] = SIDES if check.compares else ("canary",)
        for side in sides:
            figure: Measure = (
                SuccessRate(workload(spec, side))
                if check.name == "success-rate"
                else LatencyQuantile(workload(spec, side), P99)
            )
            queries[query_key(index, check, side)] = figure
    return queries


def _clean(value: float | None) -> float | None:
    """A sample as data: None, NaN and the infinities are no data (whatever the adapter let through)."""
    return None if value is None or not math.isfinite(value) else value


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"


def threshold_text(check: CheckSpec) -> str:
    """The check's thresholds as a person reads them, e.g. `>= 99%, >= GA - 1pp`."""
    if check.sequential:
        margin = f", margin +{_fmt(100 * check.margin_value)}%" if check.margin_value else ""
        return f"e >= {_fmt(1 / check.alpha_value)} (alpha {_fmt(check.alpha_value)}{margin})"
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


def _check_row(
    index: int, check: CheckSpec, verdict: Verdict, canary: float | None, stable: float | None, detail: str
) -> CheckResult:
    """The result row of the `index`th check; a custom query is named by its label or its place."""
    return CheckResult(
        name=check.name if check.name != "custom" else check.label or f"custom #{index + 1}",
        verdict=verdict,
        canary=canary,
        stable=stable,
        threshold=threshold_text(check),
        detail=detail,
    )


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

    # Sequential checks are judged on the counts since the step (`judge_sequential`), not on this window.
    windowed = [check for check in spec.checks if not check.sequential]
    needs_stable = any(check.compares for check in windowed)
    gate_problems: list[str] = []
    if error is not None:
        gate_problems.append(error)
    else:
        for side, count in (("canary", req_canary), ("GA", req_stable)):
            if side == "GA" and not needs_stable:
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
            threshold=f">= {spec.min_requests} each" if needs_stable else f">= {spec.min_requests} canary",
            detail="; ".join(gate_problems),
        )
    ]
    if not windowed and spec.checks:
        results = []
    for index, check in enumerate(spec.checks):
        if check.sequential:
            continue
        canary = value.get(query_key(index, check, "canary"))
        stable = value.get(query_key(index, check, "stable"))
        if gate_problems:
            verdict: Verdict = "inconclusive"
            detail = "not judged: " + "; ".join(gate_problems)
        else:
            verdict, detail = _judge_check(check, canary, stable)
        results.append(_check_row(index, check, verdict, canary, stable, detail))
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


def run_analysis(spec: AnalysisSpec, metrics: Metrics, at: datetime, since: datetime | None = None) -> Analysis:
    """Ask the metrics source every figure of `spec` for the window ending at `at` and judge the answers.

    Never raises MetricsError: the first failed query stops the run (an unreachable server would fail
    every query the same way, each after its timeout) and the analysis is inconclusive with that error.
    Sequential checks are judged on the counts from `since` (when the step landed) to `at`; without
    `since` they are inconclusive.
    """
    if at.tzinfo is None:
        raise ValueError("run_analysis needs a timezone-aware time")
    samples: dict[str, float | None] = {}
    analysis: Analysis | None = None
    for key, query in build_queries(spec).items():
        try:
            samples[key] = metrics.measure(query, at - spec.window, at)
        except MetricsError as exc:
            analysis = judge(spec, samples, at, error=f"query failed: {exc.one_line()}")
            break
    if analysis is None:
        analysis = judge(spec, samples, at)
    if not any(check.sequential for check in spec.checks):
        return analysis
    return with_sequential(analysis, spec, *measure_sequential(spec, metrics, since, at), since=since)


@dataclass(frozen=True)
class SideCounts:
    """One side's cumulative counts since the step: requests, 5xx responses, latency histogram (cumulative)."""

    requests: float | None
    errors: float | None
    buckets: tuple[tuple[float, float], ...] = ()


SequentialCounts = Mapping[Side, SideCounts]


def workload(spec: AnalysisSpec, side: Side) -> Workload:
    """The workload of one side, as the Metrics port counts its requests."""
    name = spec.canary_workload if side == "canary" else spec.stable_workload
    return Workload(spec.namespace, name, spec.reporter)


def measure_sequential(
    spec: AnalysisSpec, metrics: Metrics, since: datetime | None, at: datetime
) -> tuple[SequentialCounts | None, str | None]:
    """The counts the sequential checks of `spec` need, from `since` to `at`, or None and why not."""
    if since is None:
        return None, "the time the step landed is unknown"
    if since >= at:
        return None, "the step landed after the time of the analysis"
    wants_latency = any(check.name == "latency" for check in spec.checks)
    counts: dict[Side, SideCounts] = {}
    try:
        for side in SIDES:
            totals = metrics.request_counts(workload(spec, side), since, at)
            buckets = metrics.latency_buckets(workload(spec, side), since, at) if wants_latency else []
            requests, errors = totals if totals is not None else (None, None)
            counts[side] = SideCounts(_clean(requests), _clean(errors), tuple(buckets))
    except MetricsError as exc:
        return None, f"query failed: {exc.one_line()}"
    return counts, None


def _bucket_total(side: SideCounts) -> float | None:
    """Requests in a histogram (its +Inf bucket); None when it is empty or holds a count that is not finite."""
    if not side.buckets or not all(math.isfinite(count) for _, count in side.buckets):
        return None
    return side.buckets[-1][1]


def _sequential_result(
    spec: AnalysisSpec,
    check: CheckSpec,
    counts: SequentialCounts | None,
    problem: str | None,
    since: datetime | None,
    ga_period: tuple[datetime, datetime] | None = None,
) -> CheckResult:
    label = "" if check.name == "error-rate" else "p99 "
    base = CheckResult(
        name=check.name, verdict="inconclusive", canary=None, stable=None, threshold=threshold_text(check),
        sequential=True, since=since, stable_period=ga_period,
    )  # fmt: skip
    # Where each side's counts come from, as the reasons say it; at 100% GA's are from before the step.
    when = {"canary": ("has", "since the step"), "GA": ("has", "since the step")}
    before = ""
    if ga_period is not None:
        before = " before 100%"
        when = {
            "canary": ("has", "since the step to 100%"),
            "GA": ("had", f"before the step to 100% ({_when(ga_period[0])} to {_when(ga_period[1])})"),
        }
    if counts is None:
        return replace(base, detail=problem or "no data")
    canary, stable = counts["canary"], counts["stable"]
    if check.name == "error-rate":
        sizes = (canary.requests, stable.requests)
    else:
        sizes = (_bucket_total(canary), _bucket_total(stable))
    base = replace(base, requests=(sizes[0], sizes[1]))
    for side, size in (("canary", sizes[0]), ("GA", sizes[1])):
        if size is None or size <= 0:
            return replace(base, detail=f"no {side} requests recorded {when[side][1]}")
    try:
        if check.name == "error-rate":
            if canary.errors is None or stable.errors is None:
                return replace(base, detail="error counts are not numbers")
            comparison = sequential.error_rate_test(
                sizes[0] or 0, canary.errors, sizes[1] or 0, stable.errors, check.margin_value
            )
        else:
            comparison = sequential.latency_test(canary.buckets, stable.buckets, check.margin_value)
    except ValueError as exc:
        return replace(base, detail=f"cannot compare: {exc}")
    enough = all(size is not None and size >= spec.min_requests for size in sizes)
    verdict = sequential.mark(comparison, check.alpha_value, enough)
    unit = "%" if check.name == "error-rate" else " ms"
    values = (
        f"{label}{_fmt(comparison.canary or 0)}{unit} vs GA {_fmt(comparison.stable or 0)}{unit}{before}"
        if comparison.canary is not None and comparison.stable is not None
        else "no figure to show"
    )
    evidence = f"e = {_fmt(comparison.e_value)}"
    bound = _fmt(1 / check.alpha_value)
    if verdict == "fail":
        detail = f"{values}; {evidence} >= {bound}"
    elif verdict == "pass":
        detail = f"no evidence of a regression{' against GA' + before if before else ''}: {evidence} < {bound}"
    else:
        short = [
            f"{side} {when[side][0]} {size:.0f} requests {when[side][1]}, needs {spec.min_requests}"
            for side, size in (("canary", sizes[0]), ("GA", sizes[1]))
            if size is not None and size < spec.min_requests
        ]
        detail = "; ".join(short) + f" ({evidence})"
    return replace(
        base,
        verdict=verdict,
        canary=comparison.canary,
        stable=comparison.stable,
        effect=comparison.effect,
        e_value=comparison.e_value,
        detail=detail,
    )


def judge_sequential(
    spec: AnalysisSpec,
    counts: SequentialCounts | None,
    problem: str | None = None,
    since: datetime | None = None,
    *,
    ga_period: tuple[datetime, datetime] | None = None,
) -> tuple[CheckResult, ...]:
    """The sequential checks of `spec` judged on the cumulative `counts` since the step landed (`since`).

    Tri-state: fail once the e-value reaches 1/alpha; pass only when both sides have `min_requests` and there
    is no such evidence; inconclusive on no counts (`problem` says why), too few requests or numbers that are
    not finite. With `ga_period` (a canary at 100 percent) GA's counts are from that period before the step
    to 100%, and the reasons say so.
    """
    return tuple(_sequential_result(spec, c, counts, problem, since, ga_period) for c in spec.checks if c.sequential)


def with_sequential(
    analysis: Analysis,
    spec: AnalysisSpec,
    counts: SequentialCounts | None,
    problem: str | None = None,
    *,
    since: datetime | None = None,
) -> Analysis:
    """`analysis` with the sequential checks of `spec` judged on `counts` added, and its verdict recombined."""
    results = (*analysis.checks, *judge_sequential(spec, counts, problem, since))
    verdict = _combine([r.verdict for r in results])
    return replace(analysis, verdict=verdict, checks=results, summary=summarize(verdict, results))


def observed_canary_share(spec: AnalysisSpec, metrics: Metrics, at: datetime) -> float | None:
    """Percent of requests to the two workloads that went to the canary over the window ending at `at`.

    None when neither side had requests, or Prometheus could not answer (the step cannot be confirmed).
    """
    try:
        return _clean(metrics.measure(share_measure(spec), at - spec.window, at))
    except MetricsError:
        return None


Series = list[tuple[float, float]]


def _chart_range(step: timedelta) -> tuple[float, timedelta]:
    seconds = max(step.total_seconds(), 1.0)
    return seconds, timedelta(seconds=max(int(seconds), 60))


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
        points = metrics.measure_series(share_measure(spec), since, at, timedelta(seconds=seconds), window)
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
            figure = LatencyQuantile(workload(spec, side), P99)
            points = metrics.measure_series(figure, start, end, timedelta(seconds=seconds), window)
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
    """A Markdown table of the checks: name, canary, GA, threshold, verdict (with reason), window.

    Sequential checks get their own table (`render_sequential_evidence`) after the windowed one.
    """
    minutes = (analysis.window_end - analysis.window_start).total_seconds() / 60
    window = f"{minutes:g}m to {_when(analysis.window_end)}"
    lines = [
        "| Check | Canary | GA | Threshold | Verdict | Window |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    windowed = [check for check in analysis.checks if not check.sequential]
    if not windowed:
        lines = []
    for check in windowed:
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
    sequential_table = render_sequential_evidence(analysis)
    if sequential_table:
        lines += [""] if lines else []
        lines.append(sequential_table.rstrip("\n"))
    lines.append("")
    lines.append(f"**Verdict: {analysis.verdict}** ({_cell(analysis.summary)})")
    return "\n".join(lines) + "\n"


def _sequential_value(name: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "no data"
    return f"{value:.3g}%" if name == "error-rate" else f"{value:.1f} ms"


def _count(value: float | None) -> str:
    return "no data" if value is None or not math.isfinite(value) else f"{value:.0f}"


def _since_text(check: CheckResult) -> str:
    """When the counts start: the canary's (the step), and at 100 percent GA's period before the step to 100%."""
    text = _when(check.since) if check.since is not None else "unknown"
    if check.stable_period is not None:
        start, end = check.stable_period
        text += f"; GA {_when(start)} to {_when(end)}, before 100%"
    return text


def render_sequential_evidence(analysis: Analysis) -> str:
    """A Kayenta-style Markdown table of the sequential checks; empty when there are none.

    Per check: the canary's and GA's figure (error rate, or p99 from the histogram), the effect (canary / GA),
    the e-value and its anytime-valid p-value, the threshold, the mark, the requests on each side and since when.
    At 100 percent GA's figure is marked "before 100%" and its period follows the canary's start.
    """
    rows = [check for check in analysis.checks if check.sequential]
    if not rows:
        return ""
    lines = [
        "| Sequential check | Canary | GA | Effect | e-value | p-value | Threshold | Mark "
        "| Requests (canary / GA) | Since |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for check in rows:
        e_value = check.e_value
        has_e = e_value is not None and math.isfinite(e_value) and e_value > 0
        cells = (
            check.name,
            _sequential_value(check.name, check.canary),
            _sequential_value(check.name, check.stable) + (" before 100%" if check.stable_period else ""),
            "-" if check.effect is None or not math.isfinite(check.effect) else f"{check.effect:.2f}x",
            f"{e_value:.3g}" if has_e and e_value is not None else "-",
            f"{sequential.p_value(e_value):.3g}" if has_e and e_value is not None else "-",
            check.threshold,
            check.verdict + (f" ({check.detail})" if check.detail else ""),
            f"{_count(check.requests[0])} / {_count(check.requests[1])}",
            _since_text(check),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


MAX_CHART_POINTS = 60


def _thin(times: list[float]) -> list[float]:
    if len(times) <= MAX_CHART_POINTS:
        return times
    stride = math.ceil(len(times) / MAX_CHART_POINTS)
    return times[::stride]


# Line colours of the chart, in the order the lines are drawn (the canary last, on top of a GA line it
# matches): each stands out on a white and on a dark page.
CHART_COLOURS = {"GA": ("blue", "#1971c2"), "limit": ("grey", "#5c636a"), "canary": ("orange", "#d9480f")}
_LEGEND_ORDER = ("canary", "GA", "limit")


def _chart_limit(checks: Sequence[CheckSpec], ga: Mapping[float, float], times: Sequence[float]) -> list[float]:
    """The p99 the canary may reach at each time by its latency-p99 checks (their `max` and `max_ratio` x GA's
    p99, the lower), or [] when no such check bounds every point."""
    bounds = [check for check in checks if check.name == "latency-p99"]
    limits: list[float] = []
    for t in times:
        caps = [check.max for check in bounds if check.max is not None]
        caps += [check.max_ratio * ga[t] for check in bounds if check.max_ratio is not None and t in ga]
        if not caps:
            return []
        limits.append(min(caps))
    return limits


def _limit_words(checks: Sequence[CheckSpec]) -> str:
    parts = [
        f"{'at most ' + _number(check.max) + ' ms' if check.max is not None else ''}"
        f"{' and ' if check.max is not None and check.max_ratio is not None else ''}"
        f"{_number(check.max_ratio) + 'x GA' if check.max_ratio is not None else ''}"
        for check in checks
        if check.name == "latency-p99"
    ]
    return "; ".join(part for part in parts if part)


def _number(value: float | None) -> str:
    return f"{value:g}" if value is not None else ""


def render_latency_chart(canary_series: Series, stable_series: Series, checks: Sequence[CheckSpec] = ()) -> str:
    """A legend line and a fenced Mermaid `xychart-beta` block: canary p99, GA p99 and the latency-p99 limit in ms.

    Points are the timestamps both series have (a line cannot have holes); when only one series has
    data, only that line is drawn. The limit line is drawn when the policy's latency-p99 checks bound
    every point. Empty string when there are fewer than two points to draw.
    """
    canary, stable = dict(canary_series), dict(stable_series)
    # A Mermaid line cannot have holes: plot the common timestamps when both sides have data.
    times = _thin(sorted(set(canary) & set(stable) if canary and stable else set(canary) | set(stable)))
    if len(times) < 2:
        return ""  # one point draws no line
    found = {label: [data[t] for t in times] for label, data in (("canary", canary), ("GA", stable)) if data}
    limit = _chart_limit(checks, stable, times)
    if limit:
        found["limit"] = limit
    lines_data = [(label, found[label]) for label in CHART_COLOURS if label in found]
    top = max(value for _, values in lines_data for value in values)
    # Mermaid has no legend for this chart: the colours are named above it and in its title, and the palette is
    # set so that the names hold (the n-th line takes the n-th colour).
    palette = ", ".join(CHART_COLOURS[label][1] for label, _ in lines_data)
    shown = [label for label in _LEGEND_ORDER if label in found]
    named = ", ".join(f"{label} {CHART_COLOURS[label][0]}" for label in shown)
    legend = ", ".join(
        f"{'limit (' + _limit_words(checks) + ')' if label == 'limit' else label + ' p99'} in {CHART_COLOURS[label][0]}"
        for label in shown
    )
    # A numeric x-axis (minutes from the first point) lets Mermaid choose a few short tick labels; a label per
    # point would overlap. Mermaid spreads a line's points evenly over the axis, as the series' steps are.
    start = datetime.fromtimestamp(times[0], UTC)
    span = (times[-1] - times[0]) / 60
    out = [
        f"p99 latency over the window, {legend}; minutes since {start:%H:%M:%S} UTC.",
        "",
        "```mermaid",
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + palette + '"}}}}%%',
        "xychart-beta",
        f'    title "p99 latency (ms): {named}"',
        f'    x-axis "minutes since {start:%H:%M:%S} UTC" 0 --> {round(span, 2):g}',
        f'    y-axis "p99 ms" 0 --> {math.ceil(top * 1.1) if top > 0 else 1}',
    ]
    for _, values in lines_data:
        out.append("    line [" + ", ".join(f"{value:.1f}" for value in values) + "]")
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


def reference_queries(spec: AnalysisSpec) -> dict[str, Measure]:
    """The GA side of `build_queries(spec)`: what a GA reference is asked for."""
    return {key: query for key, query in build_queries(spec).items() if key.endswith(":stable")}


def read_ga_reference(spec: AnalysisSpec, metrics: Metrics, before: datetime | None) -> GaReference:
    """GA's figures over the window ending at `before` (the step to 100 percent); never raises MetricsError."""
    if before is None:
        return GaReference(None, {})
    samples: dict[str, float | None] = {}
    for key, query in reference_queries(spec).items():
        try:
            samples[key] = metrics.measure(query, before - spec.window, before)
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
        return f"no GA requests in the {window_text(spec.window)} before the step to 100%"
    if count < spec.min_requests:
        return f"GA had {count:.0f} requests before the step to 100%, needs {spec.min_requests}"
    return None


@dataclass(frozen=True)
class FullWeightCounts:
    """What the sequential checks of a canary at 100 percent are judged on.

    `counts`: the canary's since `since` (the step to 100%, or a newer canary image) and GA's over
    `ga_period` (from when the weights last moved before the step to 100% until it landed); None with
    `problem` saying why there are none.
    """

    counts: SequentialCounts | None
    since: datetime | None
    ga_period: tuple[datetime, datetime] | None
    problem: str | None = None


_NO_GA_COUNTS = "no GA counts from before the step to 100% (GA takes no traffic at 100%): "


def _side_counts(
    spec: AnalysisSpec, metrics: Metrics, side: Side, start: datetime, end: datetime, wants_latency: bool
) -> SideCounts:
    totals = metrics.request_counts(workload(spec, side), start, end)
    buckets = metrics.latency_buckets(workload(spec, side), start, end) if wants_latency else []
    requests, errors = totals if totals is not None else (None, None)
    return SideCounts(_clean(requests), _clean(errors), tuple(buckets))


def measure_sequential_full(
    spec: AnalysisSpec,
    metrics: Metrics,
    *,
    since: datetime | None,
    full_at: datetime | None,
    before_full_at: datetime | None,
    at: datetime,
) -> FullWeightCounts:
    """The counts for the sequential checks of a canary at 100 percent; never raises MetricsError.

    The canary's from `since` to `at`; GA's from `before_full_at` (when the weights last moved before the step
    to 100%) to `full_at` (when that step landed), both times read from git. GA's side is a finished period
    while the canary's grows, so each look is a valid e-value against GA's rate per request then.
    """
    period = (before_full_at, full_at) if before_full_at is not None and full_at is not None else None
    if full_at is None:
        return FullWeightCounts(None, since, None, _NO_GA_COUNTS + "history has no step to 100%")
    if before_full_at is None:
        problem = "history has no step before the step to 100% to count GA's requests from"
        return FullWeightCounts(None, since, None, _NO_GA_COUNTS + problem)
    if since is None or since >= at:
        return FullWeightCounts(None, since, period, "the step to 100% landed after the time of the analysis")
    wants_latency = any(check.name == "latency" for check in spec.checks)
    try:
        canary = _side_counts(spec, metrics, "canary", since, at, wants_latency)
    except MetricsError as exc:
        return FullWeightCounts(None, since, period, f"query failed: {exc.one_line()}")
    try:
        stable = _side_counts(spec, metrics, "stable", before_full_at, full_at, wants_latency)
    except MetricsError as exc:
        return FullWeightCounts(None, since, period, _NO_GA_COUNTS + f"query failed: {exc.one_line()}")
    return FullWeightCounts({"canary": canary, "stable": stable}, since, period)


def judge_full_weight(
    spec: AnalysisSpec,
    samples: Mapping[str, float | None],
    window_end: datetime,
    reference: GaReference,
    error: str | None = None,
    *,
    counts: FullWeightCounts | None = None,
) -> Analysis:
    """Judge a canary that takes all traffic: its figures now against GA's from before the step to 100%.

    Only the canary's request count gates the windowed checks. A comparison with GA is judged on the reference;
    without a usable one it is inconclusive (its absolute bounds still judge). A custom query that names
    `{stable}` mixes both sides at one moment and cannot be judged at 100%: inconclusive, never dropped.
    Sequential checks are judged on `counts` (the canary's since the step to 100%, GA's before it); without
    them they are inconclusive.
    """
    windowed = [check for check in spec.checks if not check.sequential]
    needs_stable = any(check.compares for check in windowed)
    queries = build_queries(spec)
    value = {key: _clean(samples.get(key)) for key in queries if not key.endswith(":stable")}
    problem = _reference_problem(spec, reference)
    ga = {key: None if problem else _clean(reference.samples.get(key)) for key in queries if key.endswith(":stable")}
    req_canary = value[f"{REQUESTS}:canary"]
    reference_note = ""
    if needs_stable and problem is None and reference.window_end is not None:
        reference_note = (
            f"GA figures: {window_text(spec.window)} to {_when(reference.window_end)}, before the step to 100%"
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
            stable=_clean(reference.samples.get(f"{REQUESTS}:stable")) if needs_stable else None,
            threshold=f">= {spec.min_requests} canary" + (", GA before 100%" if needs_stable else ""),
            detail="; ".join(gate_problems) or reference_note,
        )
    ]
    if not windowed and spec.checks:
        results = []
    for index, check in enumerate(spec.checks):
        if check.sequential:
            continue
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
        results.append(_check_row(index, check, verdict, canary, stable, detail))
    if counts is None:
        counts = FullWeightCounts(None, None, None, "the counts since the step to 100% were not measured")
    results += judge_sequential(spec, counts.counts, counts.problem, counts.since, ga_period=counts.ga_period)
    verdict = _combine([r.verdict for r in results])
    return Analysis(
        verdict=verdict,
        checks=tuple(results),
        window_start=window_end - spec.window,
        window_end=window_end,
        summary=summarize(verdict, results),
    )


def run_full_weight_analysis(
    spec: AnalysisSpec,
    metrics: Metrics,
    at: datetime,
    reference: GaReference,
    *,
    since: datetime | None = None,
    before_full_at: datetime | None = None,
) -> Analysis:
    """`run_analysis` for a canary at 100 percent: the canary's queries now, GA's from `reference`.

    Sequential checks count the canary from `since` (default: when the step to 100% landed,
    `reference.window_end`) and GA from `before_full_at` to that step.
    """
    if at.tzinfo is None:
        raise ValueError("run_full_weight_analysis needs a timezone-aware time")
    counts: FullWeightCounts | None = None
    if any(check.sequential for check in spec.checks):
        full_at = reference.window_end
        counts = measure_sequential_full(
            spec, metrics, since=since or full_at, full_at=full_at, before_full_at=before_full_at, at=at
        )
    samples: dict[str, float | None] = {}
    for key, query in build_queries(spec).items():
        if key.endswith(":stable"):
            continue
        try:
            samples[key] = metrics.measure(query, at - spec.window, at)
        except MetricsError as exc:
            error = f"query failed: {exc.one_line()}"
            return judge_full_weight(spec, samples, at, reference, error=error, counts=counts)
    return judge_full_weight(spec, samples, at, reference, counts=counts)
