"""Analysis against a real Prometheus: each scenario's verdict, the observed share and the latency chart."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from gitbot.adapters.prometheus import PrometheusMetrics
from gitbot.analysis import (
    AnalysisSpec,
    CheckSpec,
    build_queries,
    latency_series,
    observed_canary_share,
    render_evidence,
    render_latency_chart,
    run_analysis,
    share_applied_at,
)
from gitbot.domain import Analysis, CheckResult
from tests.contract.prometheus.conftest import AT, WINDOW
from tests.support.prometheus import (
    CANARY_WORKLOAD,
    HEALTHY,
    ISTIO_BUCKETS_MS,
    STABLE_WORKLOAD,
    Scenario,
    SideProfile,
    start_prometheus,
)

pytestmark = pytest.mark.real

CHECKS = (
    CheckSpec("success-rate", min=99, max_drop=1),
    CheckSpec("latency-p99", max=1000, max_ratio=1.2),
)


def spec(namespace: str, *checks: CheckSpec, min_requests: int = 100) -> AnalysisSpec:
    return AnalysisSpec(
        namespace=namespace,
        stable_workload=STABLE_WORKLOAD,
        canary_workload=CANARY_WORKLOAD,
        window=WINDOW,
        min_requests=min_requests,
        checks=checks or CHECKS,
    )


def check(analysis: Analysis, name: str) -> CheckResult:
    return next(c for c in analysis.checks if c.name == name)


def expected_p99(profile: SideProfile) -> float:
    """p99 as histogram_quantile computes it from Istio's buckets: linear inside the bucket."""
    lower, below_lower = 0.0, 0.0
    for bound in ISTIO_BUCKETS_MS:
        below = profile.below(bound)
        if below >= 0.99:
            return lower + (bound - lower) * (0.99 - below_lower) / (below - below_lower)
        lower, below_lower = bound, below
    raise AssertionError("p99 beyond the last bucket")


def test_healthy_canary_passes_with_the_expected_values(metrics: PrometheusMetrics) -> None:
    analysis = run_analysis(spec("healthy"), metrics, AT)
    assert analysis.verdict == "pass", render_evidence(analysis)
    requests = check(analysis, "requests")
    # 20 req/s, 10 percent to the canary, over 300 s.
    assert requests.canary == pytest.approx(600)
    assert requests.stable == pytest.approx(5400)
    assert check(analysis, "success-rate").canary == pytest.approx(100)
    latency = check(analysis, "latency-p99")
    assert latency.canary == pytest.approx(expected_p99(HEALTHY))
    assert latency.stable == pytest.approx(expected_p99(HEALTHY))
    assert analysis.window_end == AT
    assert analysis.window_start == AT - WINDOW


def test_slow_canary_fails_with_the_ratio_in_the_detail(metrics: PrometheusMetrics) -> None:
    analysis = run_analysis(spec("slow"), metrics, AT)
    assert analysis.verdict == "fail"
    latency = check(analysis, "latency-p99")
    ratio = expected_p99(HEALTHY.slower(2.5)) / expected_p99(HEALTHY)
    assert 2 <= ratio <= 3
    assert latency.verdict == "fail"
    assert latency.canary is not None and latency.stable is not None
    assert latency.canary / latency.stable == pytest.approx(ratio)
    assert f"{ratio:.2f}x GA" in latency.detail
    assert analysis.summary == f"p99 {ratio:.2f}x GA"
    assert check(analysis, "success-rate").verdict == "pass"


def test_canary_answering_5xx_fails_on_success_rate(metrics: PrometheusMetrics) -> None:
    analysis = run_analysis(spec("errors"), metrics, AT)
    assert analysis.verdict == "fail"
    success = check(analysis, "success-rate")
    assert success.verdict == "fail"
    assert success.canary == pytest.approx(92.0)
    assert success.stable == pytest.approx(100.0)
    assert "92 < 99" in success.detail
    assert check(analysis, "latency-p99").verdict == "pass"


def test_no_canary_traffic_is_inconclusive_not_fail(metrics: PrometheusMetrics) -> None:
    analysis = run_analysis(spec("nocanary"), metrics, AT)
    assert analysis.verdict == "inconclusive"
    requests = check(analysis, "requests")
    assert requests.canary == 0
    assert "canary has 0 requests, needs 100" in requests.detail
    assert all(c.verdict == "inconclusive" for c in analysis.checks)


def test_a_query_dividing_by_zero_is_inconclusive_not_a_pass(metrics: PrometheusMetrics) -> None:
    # The canary of `nocanary` answers nothing: GA's requests per canary request divide by its zero.
    requests = (
        'sum(increase(istio_requests_total{{destination_workload_namespace="{{namespace}}",'
        'destination_workload="{{{side}}}"}}[{{window}}]))'
    )
    ga_per_canary = f"{requests.format(side='stable')} / {requests.format(side='canary')}"
    checks = (
        CheckSpec("success-rate", min=99),  # 0 / 0: NaN
        CheckSpec("custom", query=ga_per_canary, min=1, label="GA per canary"),  # +Inf
        CheckSpec("custom", query=f"-{ga_per_canary}", max=0, label="minus GA per canary"),  # -Inf
    )
    raw = {
        key: metrics.measure(figure, AT - WINDOW, AT)
        for key, figure in build_queries(spec("nocanary", *checks)).items()
    }
    assert raw["requests:canary"] == 0 and raw["requests:stable"] == pytest.approx(6000)
    analysis = run_analysis(spec("nocanary", *checks, min_requests=0), metrics, AT)
    assert analysis.verdict == "inconclusive", render_evidence(analysis)
    assert [c.verdict for c in analysis.checks[1:]] == ["inconclusive"] * 3
    assert [c.detail for c in analysis.checks[1:]] == ["no canary data"] * 3
    text = (render_evidence(analysis) + analysis.summary).lower()
    assert "nan" not in text and "inf" not in text


def test_an_unknown_namespace_is_inconclusive(metrics: PrometheusMetrics) -> None:
    analysis = run_analysis(spec("elsewhere"), metrics, AT)
    assert analysis.verdict == "inconclusive"
    assert check(analysis, "requests").canary is None


def test_missed_scrapes_over_the_whole_window_are_inconclusive(metrics: PrometheusMetrics) -> None:
    assert run_analysis(spec("gappy"), metrics, AT).verdict == "inconclusive"
    # Once samples are back, the counters' increase covers the gap and the analysis judges again.
    assert run_analysis(spec("gappy"), metrics, AT + timedelta(minutes=5)).verdict == "pass"


def test_a_new_canary_image_is_judged_on_its_own_window(metrics: PrometheusMetrics) -> None:
    assert run_analysis(spec("newtag"), metrics, AT - timedelta(minutes=10)).verdict == "fail"
    assert run_analysis(spec("newtag"), metrics, AT).verdict == "pass"


def test_the_reporter_label_selects_the_destination_view(metrics: PrometheusMetrics) -> None:
    # The data's source-reporter series count every call twice.
    source = AnalysisSpec(
        "healthy",
        STABLE_WORKLOAD,
        CANARY_WORKLOAD,
        WINDOW,
        100,
        (CheckSpec("success-rate", min=99),),
        "source",
    )
    assert check(run_analysis(source, metrics, AT), "requests").canary == pytest.approx(1200)


def test_custom_query_with_placeholders(metrics: PrometheusMetrics) -> None:
    query = (
        'sum(rate(istio_requests_total{destination_workload_namespace="{namespace}",'
        'destination_workload="{canary}",response_code=~"5.."}[{window}]))'
    )
    # A healthy canary has no 5xx series at all: the query has no data, which is not a pass ...
    bare = run_analysis(spec("healthy", CheckSpec("custom", query=query, max=0.1)), metrics, AT)
    assert bare.verdict == "inconclusive"
    # ... unless the query itself says that no series means zero.
    errors_per_second = CheckSpec("custom", query=f"({query} or vector(0))", max=0.1)
    healthy = run_analysis(spec("healthy", errors_per_second), metrics, AT)
    failing = run_analysis(spec("errors", errors_per_second), metrics, AT)
    assert healthy.verdict == "pass"
    assert failing.verdict == "fail"
    # 2 canary req/s, 8 percent of them 5xx.
    assert check(failing, "custom #1").canary == pytest.approx(0.16)


def test_a_malformed_custom_query_is_inconclusive_with_prometheus_reason(metrics: PrometheusMetrics) -> None:
    broken = CheckSpec("custom", query="sum(rate(istio_requests_total[{window}])", max=1)
    analysis = run_analysis(spec("healthy", broken), metrics, AT)
    assert analysis.verdict == "inconclusive"
    assert "HTTP 400" in analysis.summary
    assert "\n" not in analysis.summary


def test_stopped_prometheus_is_inconclusive(tmp_path: Path) -> None:
    server = start_prometheus(tmp_path, Scenario(namespace="healthy", duration=timedelta(minutes=25)))
    with PrometheusMetrics(server.url, timeout=2) as client:
        assert run_analysis(spec("healthy"), client, AT).verdict == "pass"
        server.stop()
        started = time.monotonic()
        analysis = run_analysis(spec("healthy"), client, AT)
        elapsed = time.monotonic() - started
        share = observed_canary_share(spec("healthy"), client, AT)
    assert analysis.verdict == "inconclusive"
    assert f"cannot connect to Prometheus at {server.url}" in analysis.summary
    assert share is None
    assert elapsed < 1.0


def test_observed_share_follows_the_traffic_not_the_committed_weight(metrics: PrometheusMetrics) -> None:
    before = observed_canary_share(spec("shift"), metrics, AT - timedelta(minutes=10))
    during = observed_canary_share(spec("shift"), metrics, AT - timedelta(minutes=3))
    after = observed_canary_share(spec("shift"), metrics, AT)
    assert before == pytest.approx(0.0)
    assert during is not None and 0 < during < 10
    assert after == pytest.approx(10.0)
    assert observed_canary_share(spec("nocanary"), metrics, AT) == pytest.approx(0.0)
    assert observed_canary_share(spec("elsewhere"), metrics, AT) is None


def test_the_moment_the_share_reached_the_weight(metrics: PrometheusMetrics) -> None:
    shifted = AT - timedelta(minutes=5)  # the "shift" route change, minute 15
    applied = share_applied_at(spec("shift"), metrics, 10, 2, AT - timedelta(minutes=10), AT)
    assert applied is not None
    assert shifted < applied <= shifted + timedelta(minutes=1)
    # Asked before the change, or about a weight the traffic never reached: not applied.
    assert share_applied_at(spec("shift"), metrics, 10, 2, AT - timedelta(minutes=15), shifted) is None
    assert share_applied_at(spec("shift"), metrics, 60, 5, AT - timedelta(minutes=10), AT) is None
    assert share_applied_at(spec("elsewhere"), metrics, 10, 2, AT - timedelta(minutes=10), AT) is None


def test_latency_series_and_chart(metrics: PrometheusMetrics) -> None:
    start, end = AT - timedelta(minutes=10), AT
    canary, stable = latency_series(spec("slow"), metrics, start, end, timedelta(minutes=1))
    assert [t for t, _ in canary] == [start.timestamp() + 60 * i for i in range(11)]
    assert [t for t, _ in stable] == [t for t, _ in canary]
    assert all(v == pytest.approx(expected_p99(HEALTHY.slower(2.5))) for _, v in canary)
    assert all(v == pytest.approx(expected_p99(HEALTHY)) for _, v in stable)
    chart = render_latency_chart(canary, stable)
    lines = chart.splitlines()
    assert lines[2:5] == ["```mermaid", lines[3], "xychart-beta"] and "plotColorPalette" in lines[3]
    assert lines[6] == '    x-axis "minutes since 12:10:00 UTC" 0 --> 10'
    assert lines[8] == "    line [" + ", ".join(["175.0"] * 11) + "]"
    assert lines[9] == "    line [" + ", ".join(["375.0"] * 11) + "]"


def test_latency_series_is_empty_when_prometheus_is_unreachable() -> None:
    with PrometheusMetrics("http://127.0.0.1:9", timeout=1) as client:
        assert latency_series(spec("slow"), client, AT - WINDOW, AT, timedelta(minutes=1)) == ([], [])
