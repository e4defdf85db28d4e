"""The built-in clock, tag source and metrics store, and the demo's simulated cluster that feeds them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from gitbot.analysis import AnalysisSpec, CheckSpec, observed_canary_share, run_analysis
from gitbot.demo import sandbox
from gitbot.demo.builtin import ManualClock, MemoryMetrics, MemoryRegistry, histogram_quantile
from gitbot.demo.cluster import SLOW, Applied, SimulatedCluster, applied_state
from gitbot.errors import MetricsError
from tests.support.specs import canary_only

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SPEC = AnalysisSpec(
    "test",
    "podinfo-ga",
    "podinfo-canary",
    timedelta(minutes=5),
    100,
    (CheckSpec("success-rate", min=99), CheckSpec("latency-p99", max=300, max_ratio=1.5)),
)


def test_manual_clock_moves_only_forward_when_told() -> None:
    clock = ManualClock(START)
    assert clock.now() == START == clock.now()
    assert clock.advance(timedelta(minutes=12)) == START + timedelta(minutes=12) == clock.now()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


def test_memory_registry_lists_what_was_published_once_each() -> None:
    registry = MemoryRegistry({"ghcr.io/a/b": ["1.0.0"]})
    registry.publish("ghcr.io/a/b", "1.0.1")
    registry.publish("ghcr.io/a/b", "1.0.1")
    assert registry.list_tags("ghcr.io/a/b") == ["1.0.0", "1.0.1"]
    assert registry.list_tags("ghcr.io/other/c") == []


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    # 98 of 100 requests at or under 100 ms, all under 250 ms: the 99th lies halfway through (100, 250].
    assert histogram_quantile(0.99, [(100.0, 98.0), (250.0, 100.0), (math.inf, 100.0)]) == pytest.approx(175.0)
    # A rank in the +Inf bucket answers with the highest finite bound.
    assert histogram_quantile(0.99, [(100.0, 50.0), (math.inf, 100.0)]) == 100.0
    assert math.isnan(histogram_quantile(0.5, [(100.0, 0.0), (math.inf, 0.0)]))


def store_with_counter() -> MemoryMetrics:
    store = MemoryMetrics()
    base = START.timestamp()
    for step in range(21):  # one sample every 15 s for 5 minutes, 2 requests a second
        store.add("req_total", {"job": "a", "code": "200"}, base + 15 * step, 30.0 * step)
        store.add("req_total", {"job": "a", "code": "500"}, base + 15 * step, 1.0 * step)
    return store


def test_memory_metrics_sums_increases_and_applies_or_vector() -> None:
    store = store_with_counter()
    at = START + timedelta(minutes=5)
    assert store.instant('sum(increase(req_total{job="a"}[1m]))', at) == pytest.approx(4 * 31.0)
    assert store.instant('sum(increase(req_total{job="a",code=~"5.."}[1m]))', at) == pytest.approx(4.0)
    ratio = (
        '100 * (sum(increase(req_total{job="a",code=~"5.."}[1m])) or vector(0)) / sum(increase(req_total{job="a"}[1m]))'
    )
    assert store.instant(ratio, at) == pytest.approx(100 * 4 / 124)
    missing = 'sum(increase(req_total{job="b"}[1m]))'
    assert store.instant(missing, at) is None
    assert store.instant(f"({missing} or vector(0)) + 1", at) == 1.0
    # 0 / 0 is NaN in Prometheus: no answer, not zero.
    assert store.instant(f"({missing} or vector(0)) / ({missing} or vector(0))", at) is None
    points = store.series('sum(increase(req_total{job="a"}[1m]))', START + timedelta(minutes=2), at, 60)
    assert [t for t, _ in points] == [(START + timedelta(minutes=m)).timestamp() for m in (2, 3, 4, 5)]


def test_memory_metrics_refuses_what_it_cannot_answer() -> None:
    store = store_with_counter()
    with pytest.raises(MetricsError, match="cannot answer"):
        store.instant('max_over_time(req_total{job="a"}[1m])', START)
    with pytest.raises(ValueError, match="ascending"):
        store.add("req_total", {"job": "a", "code": "200"}, START.timestamp(), 0.0)


def cluster_metrics(applied: Applied, minutes: int = 10) -> tuple[MemoryMetrics, datetime]:
    cluster = SimulatedCluster(start=START, profiles={"0.2.2": SLOW})
    store = MemoryMetrics()
    cluster.apply(applied)
    end = START + timedelta(minutes=minutes)
    cluster.run_until(end, store.add)
    return store, end


def test_the_simulated_canary_gets_the_applied_share_and_passes_when_healthy() -> None:
    store, end = cluster_metrics(Applied(10, "0.2.1"))
    assert observed_canary_share(SPEC, store, end) == pytest.approx(10.0)
    analysis = run_analysis(SPEC, store, end)
    assert analysis.verdict == "pass", analysis.summary


def test_the_slow_patch_fails_the_latency_check_even_at_full_weight() -> None:
    store, end = cluster_metrics(Applied(100, "0.2.2"))
    analysis = run_analysis(canary_only(SPEC), store, end)
    assert analysis.verdict == "fail"
    p99 = next(c for c in analysis.checks if c.name == "latency-p99")
    assert p99.canary is not None and p99.canary > 2.4 * 175


def test_openmetrics_text_keeps_each_series_together_in_seconds() -> None:
    cluster = SimulatedCluster(start=START)
    cluster.apply(Applied(10, "0.2.1"))
    cluster.run_until(START + timedelta(minutes=1))
    text = cluster.openmetrics()
    lines = text.splitlines()
    assert lines[0] == "# TYPE istio_requests counter" and lines[-1] == "# EOF"
    stamps = [int(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")]
    assert min(stamps) == int(START.timestamp()) and max(stamps) == int(START.timestamp()) + 60
    series = [line.rsplit(" ", 2)[0] for line in lines if not line.startswith("#")]
    # Contiguous: once a series' samples stop, it never appears again.
    seen: list[str] = []
    for name in series:
        if not seen or seen[-1] != name:
            assert name not in seen
            seen.append(name)


def test_applied_state_reads_the_canary_weight_and_tag_from_the_seed() -> None:
    files = sandbox.seed_files()
    assert applied_state(files, sandbox.ROUTE) == Applied(0, "0.2.0")
    with pytest.raises(ValueError, match="no canary weight"):
        applied_state(files, "VirtualService/test/other")
