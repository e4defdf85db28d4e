"""A Prometheus that answers a byte at a time is cut at the query's total deadline, however long each read
may wait: one line naming the server and the deadline, no retry after the cut, and during an analysis an
inconclusive verdict (never a pass or a failure on its own)."""

from __future__ import annotations

import pytest

from gitbot.adapters.prometheus import QUERY_DEADLINE, PrometheusMetrics
from gitbot.analysis import AnalysisSpec, CheckSpec, run_analysis
from gitbot.errors import MetricsError
from tests.contract.prometheus.conftest import AT, WINDOW
from tests.support.drip import DripServer

pytestmark = pytest.mark.real


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_dripping_answer_is_cut_at_the_query_deadline(mode: str) -> None:
    with (
        DripServer(mode=mode) as drip,
        PrometheusMetrics(drip.url, timeout=5, deadline=0.5) as client,
        pytest.raises(MetricsError) as caught,
    ):
        client.instant("up", AT)
    assert caught.value.one_line() == f"Prometheus at {drip.url} sent no complete answer within 0.5s; cut off"
    assert caught.value.retryable
    # Cut long before the 2,000 bytes the server meant to drip (one every 0.05 s, 5 s per read allowed).
    assert drip.sent < 200
    assert drip.dripped == [("GET", drip.dripped[0][1])]


def test_retries_end_at_the_deadline_too() -> None:
    with (
        DripServer() as drip,
        PrometheusMetrics(drip.url, timeout=5, deadline=0.5, retries=3) as client,
        pytest.raises(MetricsError, match=r"within 0\.5s; cut off"),
    ):
        client.series("up", AT - WINDOW, AT, 60)
    # The deadline is the whole query's: the cut is not followed by a fresh attempt with a fresh clock.
    assert len(drip.dripped) == 1


def test_the_default_deadline_is_the_whole_querys() -> None:
    assert QUERY_DEADLINE == 30.0
    with pytest.raises(Exception, match="deadline"):
        PrometheusMetrics("http://127.0.0.1:9", deadline=0)


def test_a_dripping_prometheus_makes_the_analysis_inconclusive() -> None:
    spec = AnalysisSpec(
        namespace="test",
        stable_workload="podinfo-ga",
        canary_workload="podinfo-canary",
        window=WINDOW,
        min_requests=100,
        checks=(CheckSpec("success-rate", min=99), CheckSpec("latency-p99", max_ratio=1.2)),
    )
    with DripServer() as drip, PrometheusMetrics(drip.url, timeout=5, deadline=0.5) as client:
        analysis = run_analysis(spec, client, AT)
    assert analysis.verdict == "inconclusive"
    assert f"Prometheus at {drip.url} sent no complete answer within 0.5s; cut off" in analysis.summary
    # The first cut query ends the run: one drip, not one per query.
    assert len(drip.dripped) == 1
