"""The PromQL the Prometheus adapter writes for each figure of the Metrics port, over Istio's standard metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gitbot.adapters.prometheus import promql
from gitbot.ports import CanaryShare, CustomQuery, LatencyQuantile, Measure, Requests, SuccessRate, Workload

CANARY = Workload("test", "podinfo-canary")
GA = Workload("test", "podinfo-ga")
SELECT = 'reporter="destination",destination_workload_namespace="test",destination_workload="{}"'
CANARY_REQUESTS = "sum(increase(istio_requests_total{" + SELECT.format("podinfo-canary") + "}[5m]))"
GA_REQUESTS = "sum(increase(istio_requests_total{" + SELECT.format("podinfo-ga") + "}[5m]))"


@pytest.mark.parametrize(
    ("measure", "text"),
    [
        (Requests(CANARY), CANARY_REQUESTS),
        (
            SuccessRate(GA),
            "100 * (1 - (sum(increase(istio_requests_total{"
            + SELECT.format("podinfo-ga")
            + ',response_code=~"5.."}[5m])) or vector(0)) / '
            + GA_REQUESTS
            + ")",
        ),
        (
            LatencyQuantile(CANARY, 0.99),
            "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{"
            + SELECT.format("podinfo-canary")
            + "}[5m])))",
        ),
        (
            CanaryShare(CANARY, GA),
            f"100 * ({CANARY_REQUESTS} or vector(0)) / "
            f"(({CANARY_REQUESTS} or vector(0)) + ({GA_REQUESTS} or vector(0)))",
        ),
        (
            CustomQuery('sum(x{w="{canary}",v="{stable}",n="{namespace}"}[{window}])', CANARY, GA),
            'sum(x{w="podinfo-canary",v="podinfo-ga",n="test"}[5m])',
        ),
    ],
)
def test_each_figure_is_one_instant_query_over_the_window(measure: Measure, text: str) -> None:
    assert promql(measure, timedelta(minutes=5)) == text


def test_the_reporter_and_the_window_are_the_figures_own() -> None:
    source = Workload("test", "podinfo-canary", reporter="source")
    assert promql(Requests(source), timedelta(seconds=90)) == (
        'sum(increase(istio_requests_total{reporter="source",destination_workload_namespace="test",'
        'destination_workload="podinfo-canary"}[90s]))'
    )


def test_a_custom_query_is_run_as_written_apart_from_its_placeholders() -> None:
    # Braces of label selectors stay; only the four placeholders are filled.
    text = 'sum(rate(x{a="{b}"}[{window}])) / {stable}'
    assert promql(CustomQuery(text, CANARY, GA), timedelta(hours=1)) == 'sum(rate(x{a="{b}"}[1h])) / podinfo-ga'
