"""One real Prometheus for this package, serving every scenario as its own namespace."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from gitbot.adapters.prometheus import PrometheusMetrics
from tests.support.prometheus import HEALTHY, PrometheusServer, Scenario, SideProfile, start_prometheus

# Traffic to both workloads: 20 requests per second, 10 percent to the canary unless a scenario says so.
SCENARIOS = (
    Scenario(namespace="healthy"),
    Scenario(namespace="slow", canary=HEALTHY.slower(2.5)),
    Scenario(namespace="errors", canary=SideProfile(error_ratio=0.08)),
    Scenario(namespace="nocanary", canary_share=((0.0, 0.0),)),
    # The route was changed at minute 15; before that every request still went to GA.
    Scenario(namespace="shift", canary_share=((0.0, 0.0), (900.0, 10.0))),
    # No samples between minutes 14 and 21: scrapes missed, counters kept counting.
    Scenario(namespace="gappy", gaps=((840.0, 1260.0),)),
    # A slow canary image until minute 12, then a fixed one.
    Scenario(namespace="newtag", canary=HEALTHY.slower(2.5), canary_changes=((720.0, HEALTHY),)),
)
WINDOW = timedelta(minutes=5)
# Every scenario starts at the same fixed moment; analyses look at the window ending at minute 20.
AT = SCENARIOS[0].at(timedelta(minutes=20))


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with start_prometheus(tmp_path_factory.mktemp("prometheus"), *SCENARIOS) as server:
        yield server


@pytest.fixture
def metrics(prometheus: PrometheusServer) -> Iterator[PrometheusMetrics]:
    with PrometheusMetrics(prometheus.url, timeout=5) as client:
        yield client
