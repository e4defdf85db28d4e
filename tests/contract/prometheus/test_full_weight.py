"""A canary at 100 percent against a real Prometheus: GA takes no traffic then, so a comparison with GA is
judged on GA's own figures from the window before the step to 100 percent, and is inconclusive without them.
Sequential checks compare the canary's counts since the step to 100 percent with GA's from the step before it.
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
    SideProfile,
    free_port,
    start_prometheus,
)

pytestmark = pytest.mark.real

# 60 % to the canary from minute 2, all of it from minute 15 (the step to 100 % landed then).
TO_FULL = ((0.0, 0.0), (120.0, 60.0), (900.0, 100.0))
GA = SideProfile(error_ratio=0.005)
TWICE = SideProfile(error_ratio=0.01)
SLOWER = SideProfile(0.005, HEALTHY.slower(1.3).latencies_ms)
SCENARIOS = (
    # The canary answers twice as slowly as GA throughout.
    Scenario(namespace="full-slow", canary_share=TO_FULL, canary=HEALTHY.slower(2.0)),
    Scenario(namespace="full-equal", canary_share=TO_FULL),
    # Every request went to the canary from the start: GA never had any to compare with.
    Scenario(namespace="full-only", canary_share=((0.0, 100.0),)),
    # GA and canary fail 0.5% of requests; at 100% the canary fails twice as often, or answers 30% slower.
    Scenario(namespace="seq-equal", canary_share=TO_FULL, stable=GA, canary=GA),
    Scenario(namespace="seq-twice", canary_share=TO_FULL, stable=GA, canary=GA, canary_changes=((900.0, TWICE),)),
    Scenario(namespace="seq-slower", canary_share=TO_FULL, stable=GA, canary=GA, canary_changes=((900.0, SLOWER),)),
)
START = SCENARIOS[0].start
STEPPED = START + timedelta(minutes=15)
# The step to 60 % landed at minute 2: GA's counts for the sequential checks run from then to the step to 100 %.
BEFORE = START + timedelta(minutes=2)
AT = START + timedelta(minutes=22)
CHECKS = (CheckSpec("success-rate", min=99, max_drop=1), CheckSpec("latency-p99", max_ratio=1.5))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """This module's scenarios in place of the package's; the package's `metrics` client asks this server."""
    with start_prometheus(tmp_path_factory.mktemp("full-weight"), *SCENARIOS) as server:
        yield server


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


SEQUENTIAL = (CheckSpec("error-rate", alpha=0.05), CheckSpec("latency", alpha=0.05))


def sequential_at_100(metrics: PrometheusMetrics, namespace: str) -> Analysis:
    the_spec = spec(namespace, *SEQUENTIAL)
    reference = read_ga_reference(the_spec, metrics, STEPPED)
    return run_full_weight_analysis(the_spec, metrics, AT, reference, before_full_at=BEFORE)


@pytest.mark.parametrize(
    ("namespace", "errors", "latency"),
    [("seq-equal", "pass", "pass"), ("seq-twice", "fail", "pass"), ("seq-slower", "pass", "fail")],
)
def test_sequential_checks_at_100_percent_compare_with_ga_before_the_step(
    metrics: PrometheusMetrics, namespace: str, errors: str, latency: str
) -> None:
    analysis = sequential_at_100(metrics, namespace)
    assert [(c.name, c.verdict) for c in analysis.checks] == [("error-rate", errors), ("latency", latency)], analysis
    for check in analysis.checks:
        # 20 requests a second: all to the canary for the 7 minutes since the step to 100 %; GA's 40 % for the
        # 13 minutes from the step to 60 % until then.
        assert check.requests == pytest.approx((8400, 6240), rel=0.01)
        assert (check.since, check.stable_period) == (STEPPED, (BEFORE, STEPPED))


def test_twice_gas_error_rate_at_100_percent_shows_ga_before_the_step_in_the_evidence(
    metrics: PrometheusMetrics,
) -> None:
    analysis = sequential_at_100(metrics, "seq-twice")
    errors = row(analysis, "error-rate")
    assert errors.effect == pytest.approx(2.0, rel=0.05)
    assert analysis.summary.startswith("error-rate 1% vs GA 0.5% before 100%; e = ")
    line = next(line for line in render_evidence(analysis).splitlines() if line.startswith("| error-rate |"))
    assert "| 0.5% before 100% |" in line
    assert line.endswith("| 2026-01-05 12:15:00Z; GA 2026-01-05 12:02:00Z to 2026-01-05 12:15:00Z, before 100% |")


def test_sequential_checks_without_ga_requests_before_100_percent_are_inconclusive(
    metrics: PrometheusMetrics,
) -> None:
    analysis = sequential_at_100(metrics, "full-only")
    assert analysis.verdict == "inconclusive"
    assert all(
        c.verdict == "inconclusive"
        and c.detail == "no GA requests recorded before the step to 100% (2026-01-05 12:02:00Z to 2026-01-05 12:15:00Z)"
        for c in analysis.checks
    ), analysis


def test_sequential_checks_at_100_percent_with_prometheus_down_are_inconclusive() -> None:
    with PrometheusMetrics(f"http://127.0.0.1:{free_port()}", timeout=2) as down:
        the_spec = spec("seq-twice", *SEQUENTIAL)
        analysis = run_full_weight_analysis(
            the_spec, down, AT, read_ga_reference(the_spec, down, STEPPED), before_full_at=BEFORE
        )
    assert analysis.verdict == "inconclusive"
    assert all(c.detail.startswith("query failed: cannot connect to Prometheus") for c in analysis.checks), analysis
