"""Sequential checks through a real Prometheus: the counts asked by the adapter and the verdicts they give.

A Prometheus of its own serves Istio-shaped counters and histogram buckets (backfilled with promtool) for an
A/A canary, a canary with twice GA's error rate, one with every latency 30% longer and one without traffic.
The same scenarios, loaded into the built-in metrics store, must give the same counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

import pytest

from gitbot.adapters.prometheus import PrometheusMetrics
from gitbot.analysis import AnalysisSpec, CheckSpec, render_evidence, run_analysis
from gitbot.demo.builtin import MemoryMetrics
from gitbot.ports import Workload
from tests.contract.prometheus.test_builtin_metrics import memory_of
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

GA = SideProfile(error_ratio=0.005)
SCENARIOS = (
    Scenario(namespace="same", stable=GA, canary=GA),
    Scenario(namespace="twice", stable=GA, canary=SideProfile(error_ratio=0.01)),
    Scenario(namespace="slower", stable=GA, canary=SideProfile(0.005, HEALTHY.slower(1.3).latencies_ms)),
    Scenario(namespace="idle", stable=GA, canary=GA, canary_share=((0.0, 0.0),)),
)
START = SCENARIOS[0].start
# The step landed at minute 5; the bot judges at minute 25.
SINCE, AT = START + timedelta(minutes=5), START + timedelta(minutes=25)
CHECKS = (CheckSpec("error-rate", alpha=0.05), CheckSpec("latency", alpha=0.05))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """This module's scenarios in place of the package's; the package's `metrics` client asks this server."""
    with start_prometheus(tmp_path_factory.mktemp("prometheus-sequential"), *SCENARIOS) as server:
        yield server


def spec(namespace: str) -> AnalysisSpec:
    return AnalysisSpec(namespace, STABLE_WORKLOAD, CANARY_WORKLOAD, timedelta(minutes=5), 100, CHECKS)


def test_request_and_error_counts_since_the_step(metrics: PrometheusMetrics) -> None:
    # 20 requests a second, 10% to the canary, for 20 minutes.
    counts = metrics.request_counts(Workload("twice", CANARY_WORKLOAD), SINCE, AT)
    assert counts is not None
    assert counts[0] == pytest.approx(2400, rel=0.01)
    assert counts[1] == pytest.approx(24, rel=0.01)
    ga = metrics.request_counts(Workload("twice", STABLE_WORKLOAD), SINCE, AT)
    assert ga is not None and ga[0] == pytest.approx(21600, rel=0.01) and ga[1] == pytest.approx(108, rel=0.01)
    # The source reporter counts the same calls twice: the workload's reporter is part of the question.
    source = metrics.request_counts(Workload("twice", CANARY_WORKLOAD, reporter="source"), SINCE, AT)
    assert source is not None and source[0] == pytest.approx(4800, rel=0.01) and source[1] == 0
    # Series without traffic count nothing; no series at all is no data.
    assert metrics.request_counts(Workload("idle", CANARY_WORKLOAD), SINCE, AT) == (0.0, 0.0)
    assert metrics.request_counts(Workload("nowhere", CANARY_WORKLOAD), SINCE, AT) is None


def test_latency_buckets_since_the_step(metrics: PrometheusMetrics) -> None:
    buckets = metrics.latency_buckets(Workload("same", CANARY_WORKLOAD), SINCE, AT)
    bounds = [bound for bound, _ in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == math.inf and 25.0 in bounds
    by_bound = dict(buckets)
    # 90% of requests take 20 ms, 8% 60 ms, 2% 150 ms.
    assert by_bound[25.0] == pytest.approx(0.9 * 2400, rel=0.01)
    assert by_bound[100.0] == pytest.approx(0.98 * 2400, rel=0.01)
    assert by_bound[math.inf] == pytest.approx(2400, rel=0.01)
    assert metrics.latency_buckets(Workload("nowhere", CANARY_WORKLOAD), SINCE, AT) == []


def test_the_built_in_store_counts_as_prometheus_does(prometheus: PrometheusServer, metrics: PrometheusMetrics) -> None:
    memory: MemoryMetrics = memory_of(prometheus)
    for scenario in SCENARIOS:
        for name in (CANARY_WORKLOAD, STABLE_WORKLOAD):
            workload = Workload(scenario.namespace, name)
            real, built_in = metrics.request_counts(workload, SINCE, AT), memory.request_counts(workload, SINCE, AT)
            assert real is not None and built_in is not None
            assert built_in == pytest.approx(real, rel=0.001, abs=1e-6)
            real_buckets = metrics.latency_buckets(workload, SINCE, AT)
            built_in_buckets = memory.latency_buckets(workload, SINCE, AT)
            assert [b for b, _ in built_in_buckets] == [b for b, _ in real_buckets]
            assert [c for _, c in built_in_buckets] == pytest.approx([c for _, c in real_buckets], rel=0.001, abs=1e-6)


@pytest.mark.parametrize(
    ("namespace", "errors", "latency"),
    [
        ("same", "pass", "pass"),
        ("twice", "fail", "pass"),
        ("slower", "pass", "fail"),
        ("idle", "inconclusive", "inconclusive"),
    ],
)
def test_verdicts_through_prometheus(metrics: PrometheusMetrics, namespace: str, errors: str, latency: str) -> None:
    analysis = run_analysis(spec(namespace), metrics, AT, since=SINCE)
    assert [(c.name, c.verdict) for c in analysis.checks] == [("error-rate", errors), ("latency", latency)], analysis
    assert all(c.since == SINCE for c in analysis.checks)
    assert "| Sequential check |" in render_evidence(analysis)


def test_an_unreachable_prometheus_is_inconclusive() -> None:
    with PrometheusMetrics(f"http://127.0.0.1:{free_port()}", timeout=2) as down:
        analysis = run_analysis(spec("twice"), down, AT, since=SINCE)
    assert analysis.verdict == "inconclusive"
    assert all("cannot connect to Prometheus" in c.detail for c in analysis.checks)


def test_restarting_the_judge_gives_the_same_verdict(prometheus: PrometheusServer) -> None:
    # No state: two fresh clients asked about the same step at the same moment agree exactly.
    verdicts = []
    for _ in range(2):
        with PrometheusMetrics(prometheus.url, timeout=5) as fresh:
            verdicts.append(run_analysis(spec("twice"), fresh, AT, since=SINCE))
    assert verdicts[0] == verdicts[1]
