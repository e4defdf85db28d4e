"""Analysis without a server: the PromQL asked, the judging of answers, evidence and chart rendering."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.adapters.prometheus import promql, promql_duration
from gitbot.analysis import (
    AnalysisSpec,
    CheckSpec,
    build_queries,
    judge,
    observed_canary_share,
    render_evidence,
    render_latency_chart,
    run_analysis,
    share_applied_at,
    share_measure,
)
from gitbot.domain import Analysis
from gitbot.errors import MetricsError
from gitbot.ports import CanaryShare, CustomQuery, Measure, Requests, Workload
from tests.support.specs import canary_only
from tests.unit.test_config import CANARY, load_refusal

END = datetime(2026, 1, 5, 12, 20, tzinfo=UTC)


def spec(*checks: CheckSpec, min_requests: int = 100) -> AnalysisSpec:
    return AnalysisSpec(
        namespace="test",
        stable_workload="podinfo-ga",
        canary_workload="podinfo-canary",
        window=timedelta(minutes=5),
        min_requests=min_requests,
        checks=checks,
    )


SUCCESS = CheckSpec("success-rate", min=95, max_drop=1)
LATENCY = CheckSpec("latency-p99", max=500, max_ratio=1.2)


@dataclass
class RecordingMetrics:
    """The Metrics port answering from a table keyed by the figure asked; records what was asked and when."""

    answers: Mapping[Measure, float | None]
    fail_on: type | None = None
    asked: list[tuple[Measure, datetime]] = field(default_factory=list)

    def measure(self, measure: Measure, start: datetime, end: datetime) -> float | None:
        self.asked.append((measure, end))
        assert end - start == timedelta(minutes=5)
        if self.fail_on is not None and isinstance(measure, self.fail_on):
            raise MetricsError("cannot connect to Prometheus at http://127.0.0.1:9")
        return self.answers.get(measure)

    def measure_series(
        self, measure: Measure, start: datetime, end: datetime, step: timedelta, window: timedelta
    ) -> list[tuple[float, float]]:
        raise AssertionError("not used here")

    def request_counts(self, workload: Workload, start: datetime, end: datetime) -> tuple[float, float] | None:
        raise AssertionError("not used here")

    def latency_buckets(self, workload: Workload, start: datetime, end: datetime) -> list[tuple[float, float]]:
        raise AssertionError("not used here")


def test_queries_select_istio_labels_for_each_side_and_the_window() -> None:
    queries = {
        key: promql(figure, timedelta(minutes=5)) for key, figure in build_queries(spec(SUCCESS, LATENCY)).items()
    }
    assert set(queries) == {
        "requests:canary",
        "requests:stable",
        "0:success-rate:canary",
        "0:success-rate:stable",
        "1:latency-p99:canary",
        "1:latency-p99:stable",
    }
    assert list(queries)[:2] == ["requests:canary", "requests:stable"]
    for key, query in queries.items():
        workload = "podinfo-canary" if key.endswith("canary") else "podinfo-ga"
        assert f'destination_workload="{workload}"' in query
        assert 'reporter="destination"' in query
        assert 'destination_workload_namespace="test"' in query
        assert "[5m]" in query
    assert "istio_requests_total" in queries["0:success-rate:canary"]
    assert 'response_code=~"5.."' in queries["0:success-rate:canary"]
    assert queries["1:latency-p99:stable"].startswith("histogram_quantile(0.99, sum by (le) (rate(")
    assert "istio_request_duration_milliseconds_bucket" in queries["1:latency-p99:stable"]


def test_absolute_only_checks_ask_the_canary_side_only() -> None:
    queries = build_queries(spec(CheckSpec("latency-p99", max=300)))
    assert "0:latency-p99:canary" in queries
    assert "0:latency-p99:stable" not in queries


def test_custom_query_placeholders_are_filled_and_label_braces_kept() -> None:
    check = CheckSpec(
        "custom",
        query='sum(rate(x{ns="{namespace}",w="{canary}"}[{window}])) / sum(rate(x{w="{stable}"}[{window}]))',
        max=0.5,
    )
    asked = build_queries(spec(check))["0:custom:canary"]
    text = promql(asked, timedelta(minutes=5))
    assert text == 'sum(rate(x{ns="test",w="podinfo-canary"}[5m])) / sum(rate(x{w="podinfo-ga"}[5m]))'
    assert check.compares  # it names {stable}, so GA must have traffic too
    # The analysis passes the user's text on unfilled: the metrics source owns its placeholders.
    assert asked == CustomQuery(check.query or "", Workload("test", "podinfo-canary"), Workload("test", "podinfo-ga"))


@pytest.mark.parametrize(
    ("window", "text"),
    [(timedelta(minutes=5), "5m"), (timedelta(seconds=90), "90s"), (timedelta(hours=2), "2h")],
)
def test_promql_duration(window: timedelta, text: str) -> None:
    assert promql_duration(window) == text


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("{name: latency-p99}", "at least one threshold"),
        ("{name: latency-p99, min: 1.0}", "does not take min"),
        ("{name: success-rate, maxRatio: 1.2}", "does not take maxRatio"),
        ("{name: custom, max: 1.0}", "needs a query"),
        ("{name: custom, query: ' ', max: 1.0}", "needs a query"),
        ("{name: success-rate, min: 99.0, query: up}", "takes no query"),
        ("{name: latency-p99, maxRatio: 0.0}", "greater than 0"),
        ("{name: latency-p99, max: .nan}", "finite"),
        ("{name: latency-p99, maxRatio: .inf}", "maxRatio must be a finite number"),
        ("{name: apdex, max: 1.0}", "must be one of"),
    ],
)
def test_bad_check_specs_are_refused_in_one_line(tmp_path: Path, check: str, message: str) -> None:
    # The policy loader is the one validator of a check: the analysis takes the checks it is given.
    text = load_refusal(tmp_path, CANARY.replace("{name: success-rate, min: 99}", check, 1))
    assert ":29: spec.canaries[0].analysis.checks[0]" in text, text
    assert message in text, text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("window: 5m", "window: 0s", "25: spec.canaries[0].analysis.window"),
        ("window: 5m", "window: 5m\n        namespace: 'te\"st'", "26: spec.canaries[0].analysis.namespace"),
        ("canaryWorkload: podinfo-canary", "canaryWorkload: ''", "27: spec.canaries[0].analysis.canaryWorkload"),
    ],
)
def test_bad_analysis_specs_are_refused(tmp_path: Path, old: str, new: str, where: str) -> None:
    assert f".yaml:{where}: " in load_refusal(tmp_path, CANARY.replace(old, new, 1))


def samples(changes: Mapping[str, float | None] | None = None) -> dict[str, float | None]:
    base: dict[str, float | None] = {
        "requests:canary": 600.0,
        "requests:stable": 5400.0,
        "0:success-rate:canary": 99.9,
        "0:success-rate:stable": 99.95,
        "1:latency-p99:canary": 180.0,
        "1:latency-p99:stable": 175.0,
    }
    base.update(changes or {})
    return base


def verdicts(analysis: Analysis) -> dict[str, str]:
    return {check.name: check.verdict for check in analysis.checks}


JUDGE_CASES = [
    ("healthy", {}, "pass", {"requests": "pass", "success-rate": "pass", "latency-p99": "pass"}),
    ("slow canary", {"1:latency-p99:canary": 420.0}, "fail", {"latency-p99": "fail"}),
    ("over absolute max", {"1:latency-p99:canary": 600.0, "1:latency-p99:stable": 590.0}, "fail", {}),
    ("5xx canary", {"0:success-rate:canary": 90.0}, "fail", {"success-rate": "fail"}),
    ("worse than GA by margin", {"0:success-rate:canary": 98.9, "0:success-rate:stable": 100.0}, "fail", {}),
    ("too few canary requests", {"requests:canary": 40.0}, "inconclusive", {"latency-p99": "inconclusive"}),
    ("too few GA requests", {"requests:stable": 99.0}, "inconclusive", {"requests": "inconclusive"}),
    ("no canary series", {"requests:canary": None}, "inconclusive", {}),
    ("NaN latency", {"1:latency-p99:canary": math.nan}, "inconclusive", {"latency-p99": "inconclusive"}),
    ("no GA latency", {"1:latency-p99:stable": None}, "inconclusive", {"latency-p99": "inconclusive"}),
    # A bound that fails on real data fails, even when the comparison lacks GA data.
    ("absolute fail without GA", {"1:latency-p99:canary": 900.0, "1:latency-p99:stable": None}, "fail", {}),
    (
        "too few requests hide a failure",
        {"requests:canary": 10.0, "0:success-rate:canary": 0.0},
        "inconclusive",
        {},
    ),
]


@pytest.mark.parametrize(("label", "changes", "verdict", "per_check"), JUDGE_CASES, ids=[c[0] for c in JUDGE_CASES])
def test_judge(label: str, changes: dict[str, float | None], verdict: str, per_check: dict[str, str]) -> None:
    analysis = judge(spec(SUCCESS, LATENCY), samples(changes), END)
    assert analysis.verdict == verdict, label
    for name, expected in per_check.items():
        assert verdicts(analysis)[name] == expected
    assert analysis.window_end == END
    assert analysis.window_start == END - timedelta(minutes=5)


def test_judge_reports_the_ratio_in_the_detail_and_summary() -> None:
    answers = {"requests:canary": 600.0, "requests:stable": 5400.0}
    answers |= {"0:latency-p99:canary": 402.5, "0:latency-p99:stable": 175.0}
    analysis = judge(spec(LATENCY), answers, END)
    latency = next(c for c in analysis.checks if c.name == "latency-p99")
    assert latency.verdict == "fail"
    assert "2.30x GA" in latency.detail
    assert analysis.summary == "p99 2.30x GA"
    assert latency.canary == 402.5
    assert latency.stable == 175.0


def test_a_query_error_makes_every_check_inconclusive() -> None:
    analysis = judge(spec(SUCCESS), samples(), END, error="query failed: boom")
    assert analysis.verdict == "inconclusive"
    assert all(c.verdict == "inconclusive" for c in analysis.checks)
    assert "boom" in analysis.summary


def test_canary_only_drops_comparisons_so_gas_traffic_is_not_needed() -> None:
    full = spec(SUCCESS, LATENCY, CheckSpec("latency-p99", max_ratio=1.5))
    alone = canary_only(full)
    assert full.needs_stable
    assert not alone.needs_stable
    assert alone.checks == (CheckSpec("success-rate", min=95), CheckSpec("latency-p99", max=500))
    analysis = judge(
        alone,
        {"requests:canary": 6000.0, "requests:stable": 0.0, "0:success-rate:canary": 99.9,
         "1:latency-p99:canary": 170.0},
        END,
    )  # fmt: skip
    assert analysis.verdict == "pass"


def test_run_analysis_asks_every_query_at_the_given_time() -> None:
    the_spec = spec(SUCCESS, LATENCY)
    queries = build_queries(the_spec)
    metrics = RecordingMetrics({queries[key]: value for key, value in samples().items()})
    analysis = run_analysis(the_spec, metrics, END)
    assert analysis.verdict == "pass"
    assert [q for q, _ in metrics.asked] == list(queries.values())
    assert {at for _, at in metrics.asked} == {END}


def test_run_analysis_turns_an_unreachable_server_into_inconclusive_and_stops_asking() -> None:
    metrics = RecordingMetrics({}, fail_on=Requests)
    analysis = run_analysis(spec(SUCCESS, LATENCY), metrics, END)
    assert analysis.verdict == "inconclusive"
    assert len(metrics.asked) == 1
    assert "cannot connect to Prometheus" in analysis.checks[0].detail


def test_observed_share_is_none_when_prometheus_fails() -> None:
    assert observed_canary_share(spec(SUCCESS), RecordingMetrics({}, fail_on=CanaryShare), END) is None


def test_evidence_table_has_one_row_per_check_with_values_threshold_verdict_and_window() -> None:
    analysis = judge(spec(SUCCESS, LATENCY), samples({"1:latency-p99:canary": 420.0}), END)
    text = render_evidence(analysis)
    lines = text.splitlines()
    assert lines[0] == "| Check | Canary | GA | Threshold | Verdict | Window |"
    rows = [line for line in lines[2:] if line.startswith("|")]
    assert len(rows) == 3
    latency = next(row for row in rows if row.startswith("| latency-p99 "))
    cells = [cell.strip() for cell in latency.strip("|").split("|")]
    assert cells == [
        "latency-p99",
        "420.0 ms",
        "175.0 ms",
        "<= 500 ms, <= 1.2x GA",
        "fail (2.40x GA)",
        "5m to 2026-01-05 12:20:00Z",
    ]
    assert "**Verdict: fail**" in text


def test_evidence_escapes_pipes_in_details() -> None:
    analysis = judge(spec(SUCCESS), samples(), END, error="query failed: a|b")
    assert "a\\|b" in render_evidence(analysis)


def chart_block(chart: str) -> list[str]:
    """The lines of the chart's fenced Mermaid block, without the fences."""
    lines = chart.splitlines()
    start = lines.index("```mermaid")
    assert lines[-1] == "```"
    return lines[start + 1 : -1]


def test_latency_chart_is_a_mermaid_xychart_with_both_lines_on_common_times() -> None:
    base = END.timestamp()
    canary = [(base + 60 * i, 200.0 + i) for i in range(5)]
    stable = [(base + 60 * i, 100.0) for i in range(1, 6)]
    chart = render_latency_chart(canary, stable)
    assert chart.splitlines()[0] == (
        "p99 latency over the window, canary p99 in orange, GA p99 in blue; minutes since 12:21:00 UTC."
    )
    block = chart_block(chart)
    assert block[0] == '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "#1971c2, #d9480f"}}}}%%'
    assert block[1] == "xychart-beta"
    assert block[2] == '    title "p99 latency (ms): canary orange, GA blue"'
    # Minutes from the first common point: Mermaid picks a few short tick labels itself.
    assert block[3] == '    x-axis "minutes since 12:21:00 UTC" 0 --> 3'
    assert block[4] == '    y-axis "p99 ms" 0 --> 225'
    # GA first, the canary last: drawn on top where the two lines meet.
    assert block[5:] == ["    line [100.0, 100.0, 100.0, 100.0]", "    line [201.0, 202.0, 203.0, 204.0]"]


def test_latency_chart_draws_the_latency_limit_as_a_line_named_in_its_legend() -> None:
    base = END.timestamp()
    canary = [(base + 60 * i, 150.0) for i in range(3)]
    stable = [(base + 60 * i, 100.0 * (i + 1)) for i in range(3)]
    checks = (CheckSpec("latency-p99", max=250.0, max_ratio=2.0), CheckSpec("success-rate", min=99.0))
    chart = render_latency_chart(canary, stable, checks)
    assert "limit (at most 250 ms and 2x GA) in grey" in chart.splitlines()[0]
    block = chart_block(chart)
    assert '"plotColorPalette": "#1971c2, #5c636a, #d9480f"' in block[0]
    assert block[2] == '    title "p99 latency (ms): canary orange, GA blue, limit grey"'
    # The lower of 250 ms and twice GA's p99 at each point, drawn between GA and the canary.
    assert block[5:] == [
        "    line [100.0, 200.0, 300.0]",
        "    line [200.0, 250.0, 250.0]",
        "    line [150.0, 150.0, 150.0]",
    ]
    assert block[4] == '    y-axis "p99 ms" 0 --> 330'
    # Without a latency-p99 check, or with only a ratio and no GA line, there is no limit to draw.
    assert "limit" not in render_latency_chart(canary, stable, (CheckSpec("success-rate", min=99.0),))
    assert "limit" not in render_latency_chart(canary, [], (CheckSpec("latency-p99", max_ratio=2.0),))


def test_latency_chart_with_one_side_draws_one_line_and_nothing_for_none() -> None:
    base = END.timestamp()
    chart = render_latency_chart([], [(base, 100.0), (base + 60, 110.0)])
    assert sum(1 for line in chart.splitlines() if line.strip().startswith("line [")) == 1
    # The one line drawn takes the first colour of the palette: GA's own, so the legend holds.
    assert '"plotColorPalette": "#1971c2"' in chart and "GA p99 in blue" in chart and "orange" not in chart
    assert render_latency_chart([], []) == ""
    assert render_latency_chart([(base, 100.0)], [(base, 100.0)]) == "", "one point draws no line"


def test_latency_chart_is_thinned_to_a_readable_number_of_points() -> None:
    base = END.timestamp()
    series = [(base + 15 * i, 100.0) for i in range(600)]
    chart = render_latency_chart(series, series)
    line = next(line for line in chart.splitlines() if "line [" in line)
    assert 1 < line.count(",") + 1 <= 60
    assert '    x-axis "minutes since 12:20:00 UTC" 0 --> 147.5' in chart.splitlines()


@dataclass
class SeriesMetrics:
    """The Metrics port answering every range query with the same points."""

    points: list[tuple[float, float]]

    def measure(self, measure: Measure, start: datetime, end: datetime) -> float | None:
        raise AssertionError("not used here")

    def measure_series(
        self, measure: Measure, start: datetime, end: datetime, step: timedelta, window: timedelta
    ) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.points if start.timestamp() <= t <= end.timestamp()]

    def request_counts(self, workload: Workload, start: datetime, end: datetime) -> tuple[float, float] | None:
        raise AssertionError("not used here")

    def latency_buckets(self, workload: Workload, start: datetime, end: datetime) -> list[tuple[float, float]]:
        raise AssertionError("not used here")


@pytest.mark.parametrize(
    ("shares", "applied_minute"),
    [
        ([0.0, 9.0, 10.4, 9.7, 10.0], 2),
        ([10.0, 10.0, 10.0, 10.0, 10.0], 0),
        ([0.0, 10.0, 3.0, 10.0, 10.0], 3),
        ([0.0, 10.0, 10.0, 10.0, 3.0], None),
        ([], None),
    ],
)
def test_share_applied_at_is_the_start_of_the_last_run_within_tolerance(
    shares: list[float], applied_minute: int | None
) -> None:
    since = END - timedelta(minutes=4)
    points = [(since.timestamp() + 60 * i, share) for i, share in enumerate(shares)]
    applied = share_applied_at(spec(SUCCESS), SeriesMetrics(points), 10, 0.5, since, END)
    assert applied == (None if applied_minute is None else since + timedelta(minutes=applied_minute))


def test_share_applied_at_needs_a_recent_point() -> None:
    since = END - timedelta(minutes=10)
    stale = [(since.timestamp() + 60 * i, 10.0) for i in range(5)]  # nothing in the last 5 minutes
    assert share_applied_at(spec(SUCCESS), SeriesMetrics(stale), 10, 0.5, since, END) is None


def threshold_keys(check: CheckSpec) -> str:
    return "+".join(k for k in ("min", "max", "max_ratio", "max_drop") if getattr(check, k) is not None)


NON_FINITE = (math.nan, math.inf, -math.inf)
# Every kind of check and threshold, with the query keys it reads (the GA side only where it compares).
EVERY_CHECK = (
    (CheckSpec("success-rate", min=95), ("0:success-rate:canary",)),
    (CheckSpec("success-rate", max_drop=1), ("0:success-rate:canary", "0:success-rate:stable")),
    (CheckSpec("latency-p99", max=500), ("0:latency-p99:canary",)),
    (CheckSpec("latency-p99", max_ratio=1.2), ("0:latency-p99:canary", "0:latency-p99:stable")),
    (CheckSpec("custom", query="sum(x)", min=0.1), ("0:custom:canary",)),
    (CheckSpec("custom", query="sum(x)", max=0.5), ("0:custom:canary",)),
    (CheckSpec("custom", query='sum(x{w="{stable}"})', min=-1, max=0.5), ("0:custom:canary",)),
)
FINITE_ANSWERS = {
    "requests:canary": 600.0,
    "requests:stable": 5400.0,
    "0:success-rate:canary": 99.9,
    "0:success-rate:stable": 99.95,
    "0:latency-p99:canary": 180.0,
    "0:latency-p99:stable": 175.0,
    "0:custom:canary": 0.2,
}
NON_FINITE_CASES = [
    pytest.param(check, key, bad, id=f"{check.name}-{threshold_keys(check)}-{key}-{bad}")
    for check, keys in EVERY_CHECK
    for key in (*keys, "requests:canary", *(("requests:stable",) if check.compares else ()))
    for bad in NON_FINITE
]


@pytest.mark.parametrize(("check", "key", "bad"), NON_FINITE_CASES)
def test_a_non_finite_answer_is_no_data_for_every_check(check: CheckSpec, key: str, bad: float) -> None:
    # The finite answers pass: only the one non-finite value can make the verdict anything else.
    assert judge(spec(check), FINITE_ANSWERS, END).verdict == "pass"
    analysis = judge(spec(check), {**FINITE_ANSWERS, key: bad}, END)
    assert analysis.verdict == "inconclusive", render_evidence(analysis)
    values = [v for c in analysis.checks for v in (c.canary, c.stable) if v is not None]
    assert all(math.isfinite(v) for v in values)
    text = (render_evidence(analysis) + analysis.summary).lower()
    assert "nan" not in text and "inf" not in text, text


@pytest.mark.parametrize("bad", NON_FINITE)
def test_a_non_finite_request_count_on_both_sides_is_no_data(bad: float) -> None:
    analysis = judge(spec(SUCCESS, LATENCY), {key: bad for key in samples()}, END)
    assert analysis.verdict == "inconclusive"
    assert analysis.summary == "no canary requests recorded; no GA requests recorded"


@pytest.mark.parametrize("bad", NON_FINITE)
def test_a_non_finite_share_is_not_observed(bad: float) -> None:
    the_spec = spec(SUCCESS)
    metrics = RecordingMetrics({share_measure(the_spec): bad})
    assert observed_canary_share(the_spec, metrics, END) is None
