"""A canary at 100 percent against a real Prometheus: GA takes no traffic then, so a comparison with GA is
judged on GA's own figures from the window before the step to 100 percent, and is inconclusive without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from gitbot.adapters.prometheus import PrometheusMetrics
from gitbot.analysis import (
    AnalysisSpec,
    CheckSpec,
    GaReference,
    read_ga_reference,
    render_evidence,
    run_full_weight_analysis,
)
from gitbot.domain import Analysis, CheckResult
from tests.support.prometheus import (
    CANARY_WORKLOAD,
    HEALTHY,
    STABLE_WORKLOAD,
    PrometheusServer,
    Scenario,
    start_prometheus,
)

pytestmark = pytest.mark.real

# 60 % to the canary from minute 2, all of it from minute 15 (the step to 100 % landed then).
TO_FULL = ((0.0, 0.0), (120.0, 60.0), (900.0, 100.0))
SCENARIOS = (
    # The canary answers twice as slowly as GA throughout.
    Scenario(namespace="full-slow", canary_share=TO_FULL, canary=HEALTHY.slower(2.0)),
    Scenario(namespace="full-equal", canary_share=TO_FULL),
    # Every request went to the canary from the start: GA never had any to compare with.
    Scenario(namespace="full-only", canary_share=((0.0, 100.0),)),
)
START = SCENARIOS[0].start
STEPPED = START + timedelta(minutes=15)
AT = START + timedelta(minutes=22)
CHECKS = (CheckSpec("success-rate", min=99, max_drop=1), CheckSpec("latency-p99", max_ratio=1.5))


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusMetrics]:
    server: PrometheusServer = start_prometheus(tmp_path_factory.mktemp("full-weight"), *SCENARIOS)
    try:
        with PrometheusMetrics(server.url, timeout=5) as client:
            yield client
    finally:
        server.stop()


def spec(namespace: str, *checks: CheckSpec) -> AnalysisSpec:
    return AnalysisSpec(
        namespace=namespace,
        stable_workload=STABLE_WORKLOAD,
        canary_workload=CANARY_WORKLOAD,
        window=timedelta(minutes=5),
        min_requests=100,
        checks=checks or CHECKS,
    )


def analyse(metrics: PrometheusMetrics, namespace: str, stepped: datetime | None = STEPPED) -> Analysis:
    the_spec = spec(namespace)
    return run_full_weight_analysis(the_spec, metrics, AT, read_ga_reference(the_spec, metrics, stepped))


def row(analysis: Analysis, name: str) -> CheckResult:
    return next(c for c in analysis.checks if c.name == name)


def test_twice_gas_p99_at_100_percent_fails_against_ga_before_the_step(metrics: PrometheusMetrics) -> None:
    analysis = analyse(metrics, "full-slow")
    latency = row(analysis, "latency-p99")
    assert analysis.verdict == "fail" and latency.verdict == "fail"
    # GA's p99 from before the step (175 ms), the canary's now (375 ms: the (250, 500] bucket).
    assert (latency.canary, latency.stable) == pytest.approx((375.0, 175.0))
    assert latency.detail == "2.14x GA before 100%"
    assert analysis.summary == "p99 2.14x GA before 100%"
    evidence = render_evidence(analysis)
    assert "| latency-p99 | 375.0 ms | 175.0 ms | <= 1.5x GA | fail (2.14x GA before 100%) |" in evidence
    assert "GA figures: 5m to 2026-01-05 12:15:00Z, before the step to 100%" in evidence


def test_a_canary_as_fast_as_ga_was_passes_at_100_percent(metrics: PrometheusMetrics) -> None:
    analysis = analyse(metrics, "full-equal")
    assert analysis.verdict == "pass", analysis.summary
    assert [c.name for c in analysis.checks] == ["requests", "success-rate", "latency-p99"]
    assert row(analysis, "latency-p99").stable == pytest.approx(175.0)
    # GA's 40 % of 20 requests a second over the 5 minutes before the step.
    assert row(analysis, "requests").stable == pytest.approx(2400.0)


def test_no_ga_requests_before_the_step_is_inconclusive_never_dropped(metrics: PrometheusMetrics) -> None:
    analysis = analyse(metrics, "full-only")
    assert analysis.verdict == "inconclusive"
    latency = row(analysis, "latency-p99")
    assert latency.verdict == "inconclusive"
    assert latency.detail == "GA had 0 requests before the step to 100%, needs 100"
    # The absolute bound of success-rate still judges; its comparison cannot.
    success = row(analysis, "success-rate")
    assert success.verdict == "inconclusive" and success.canary == pytest.approx(100.0)


def test_without_a_step_to_100_percent_in_history_comparisons_are_inconclusive(metrics: PrometheusMetrics) -> None:
    analysis = analyse(metrics, "full-slow", stepped=None)
    assert analysis.verdict == "inconclusive"
    assert row(analysis, "latency-p99").detail.startswith("no GA figures (GA takes no traffic at 100%")


def test_an_absolute_bound_still_fails_without_ga_figures(metrics: PrometheusMetrics) -> None:
    the_spec = spec("full-slow", CheckSpec("latency-p99", max=300, max_ratio=1.5))
    analysis = run_full_weight_analysis(the_spec, metrics, AT, GaReference(None, {}))
    assert analysis.verdict == "fail"
    assert row(analysis, "latency-p99").detail == "375 > 300"


def test_a_custom_query_comparing_with_ga_is_inconclusive_at_100_percent(metrics: PrometheusMetrics) -> None:
    custom = CheckSpec("custom", max=2, query='sum(rate(x{w="{canary}"}[{window}])) / sum(rate(x{w="{stable}"}[1m]))')
    the_spec = spec("full-equal", CHECKS[0], custom)
    analysis = run_full_weight_analysis(the_spec, metrics, AT, read_ga_reference(the_spec, metrics, STEPPED))
    assert [(c.name, c.verdict) for c in analysis.checks] == [
        ("requests", "pass"),
        ("success-rate", "pass"),
        ("custom #2", "inconclusive"),
    ]
    assert analysis.verdict == "inconclusive"


def test_the_reference_is_asked_at_the_step_only_for_gas_side(metrics: PrometheusMetrics) -> None:
    reference = read_ga_reference(spec("full-equal"), metrics, STEPPED)
    assert reference.window_end == STEPPED and reference.error is None
    assert sorted(reference.samples) == ["0:success-rate:stable", "1:latency-p99:stable", "requests:stable"]
