"""The built-in metrics store answers gitbot's queries as the real Prometheus does, on the same samples.

Every scenario of this package's Prometheus is also loaded into a `MemoryMetrics`; each query the analysis
asks (request counts, success rate, p99 per side, the canary share) and the 1-minute share and p99 series
must agree to within 0.1 percent.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from gitbot.adapters.prometheus import PrometheusMetrics
from gitbot.analysis import P99, AnalysisSpec, CheckSpec, build_queries, run_analysis, share_measure, workload
from gitbot.demo.builtin import MemoryMetrics
from gitbot.ports import LatencyQuantile
from tests.contract.prometheus.conftest import AT, WINDOW
from tests.support.prometheus import CANARY_WORKLOAD, STABLE_WORKLOAD, PrometheusServer, build_series

pytestmark = pytest.mark.real

CHECKS = (CheckSpec("success-rate", min=99, max_drop=1), CheckSpec("latency-p99", max=1000, max_ratio=1.2))


def memory_of(server: PrometheusServer) -> MemoryMetrics:
    store = MemoryMetrics()
    for scenario in server.scenarios:
        for series in build_series(scenario):
            labels = dict(pair.split("=", 1) for pair in series.labels.strip("{}").split(","))
            clean = {key: value.strip('"') for key, value in labels.items()}
            for stamp, value in series.points:
                store.add(series.name, clean, float(stamp), value)
    return store


@pytest.fixture(scope="module")
def memory(prometheus: PrometheusServer) -> MemoryMetrics:
    return memory_of(prometheus)


def spec(namespace: str) -> AnalysisSpec:
    return AnalysisSpec(namespace, STABLE_WORKLOAD, CANARY_WORKLOAD, WINDOW, 100, CHECKS)


def close(real: float | None, built_in: float | None, tolerance: float) -> bool:
    if real is None or built_in is None:
        return real is None and built_in is None
    return abs(real - built_in) <= tolerance * max(abs(real), 1e-9)


@pytest.mark.parametrize("namespace", ["healthy", "slow", "errors", "nocanary", "shift", "gappy", "newtag"])
def test_every_analysis_query_agrees(namespace: str, metrics: PrometheusMetrics, memory: MemoryMetrics) -> None:
    queries = {**build_queries(spec(namespace)), "share": share_measure(spec(namespace))}
    answered = 0
    for key, query in queries.items():
        real, built_in = metrics.measure(query, AT - WINDOW, AT), memory.measure(query, AT - WINDOW, AT)
        answered += built_in is not None
        assert close(real, built_in, 0.001), f"{namespace} {key}: prometheus {real}, built-in {built_in}"
    # Agreeing on "no data" alone would prove nothing: only the canary's rate and p99 are missing without
    # canary traffic, and only the scrape gap over the whole window leaves every query empty.
    missing = {"nocanary": 2, "gappy": len(queries)}.get(namespace, 0)
    assert answered == len(queries) - missing


@pytest.mark.parametrize("namespace", ["healthy", "slow", "errors", "nocanary"])
def test_verdicts_agree(namespace: str, metrics: PrometheusMetrics, memory: MemoryMetrics) -> None:
    real = run_analysis(spec(namespace), metrics, AT)
    built_in = run_analysis(spec(namespace), memory, AT)
    assert real.verdict == built_in.verdict
    assert [c.verdict for c in real.checks] == [c.verdict for c in built_in.checks]


def test_range_queries_agree(metrics: PrometheusMetrics, memory: MemoryMetrics) -> None:
    start, end = AT - timedelta(minutes=10), AT
    minute = timedelta(minutes=1)
    for query in (share_measure(spec("shift")), LatencyQuantile(workload(spec("slow"), "canary"), P99)):
        real = metrics.measure_series(query, start, end, minute, minute)
        built_in = memory.measure_series(query, start, end, minute, minute)
        assert [t for t, _ in real] == [t for t, _ in built_in]
        assert all(close(a, b, 0.001) for (_, a), (_, b) in zip(real, built_in, strict=True)), (real, built_in)
