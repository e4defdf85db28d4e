"""The demo's real servers: a `docker-registry` that takes pushes and a `prometheus` fed by restarts."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.adapters.prometheus import PrometheusMetrics
from gitbot.adapters.registry import OciRegistry
from gitbot.demo.builtin import MemoryMetrics
from gitbot.demo.cluster import Applied, SimulatedCluster
from gitbot.demo.localservers import LocalPrometheus, LocalRegistry

pytestmark = pytest.mark.real

START = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
QUERY = 'sum(increase(istio_requests_total{reporter="destination",destination_workload="podinfo-canary"}[5m]))'


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_pushed_tags_are_listed_by_the_registry_adapter(tmp_path: Path) -> None:
    server = LocalRegistry(tmp_path).start()
    try:
        digests = {server.push("demo/podinfo", tag) for tag in ("0.1.0", "0.1.1")}
        assert len(digests) == 2 and all(d.startswith("sha256:") for d in digests)
        with OciRegistry(cache_ttl=0) as client:
            assert sorted(client.list_tags(f"{server.host}/demo/podinfo")) == ["0.1.0", "0.1.1"]
            server.push("demo/podinfo", "0.1.2")
            assert "0.1.2" in client.list_tags(f"{server.host}/demo/podinfo")
    finally:
        server.stop()
    assert not listening(server.port)


def test_prometheus_serves_what_each_load_holds(tmp_path: Path) -> None:
    cluster = SimulatedCluster(start=START)
    cluster.apply(Applied(10, "0.2.1"))
    first = START + timedelta(minutes=10)
    cluster.run_until(first)
    server = LocalPrometheus(tmp_path)
    try:
        server.load(cluster.openmetrics())
        with PrometheusMetrics(server.url) as client:
            # 20 requests a second, 10 percent to the canary, over 5 minutes.
            assert client.instant(QUERY, first) == pytest.approx(600, rel=0.01)
            later = first + timedelta(minutes=10)
            assert client.instant(QUERY, later) is None
            cluster.apply(Applied(60, "0.2.1"))
            cluster.run_until(later)
            server.load(cluster.openmetrics())
            assert client.instant(QUERY, later) == pytest.approx(3600, rel=0.01)
            assert client.instant(QUERY, first) == pytest.approx(600, rel=0.01)
        assert [p.name for p in tmp_path.glob("data-*")] == ["data-2"]
        memory = MemoryMetrics()
        for name, labels, at, value in cluster.history:
            memory.add(name, labels, at, value)
        assert memory.instant(QUERY, later) == pytest.approx(3600, rel=0.01)
    finally:
        server.stop()
    assert not listening(server.port)
