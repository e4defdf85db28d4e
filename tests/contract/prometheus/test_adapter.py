"""PrometheusMetrics against a real Prometheus, and against small loopback servers that misbehave."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitbot.adapters.prometheus import PrometheusMetrics, redact_url
from gitbot.commands.compose import metrics_factory
from gitbot.config import load_policy
from gitbot.errors import ConfigError, MetricsError
from gitbot.ports import CustomQuery, Workload
from tests.contract.prometheus.conftest import AT
from tests.support.prometheus import PrometheusServer, free_port

pytestmark = pytest.mark.real

CANARY_OK = (
    'istio_requests_total{reporter="destination",destination_workload_namespace="healthy",'
    'destination_workload="podinfo-canary",response_code="200"}'
)


def test_instant_value_at_an_explicit_time(metrics: PrometheusMetrics, prometheus: PrometheusServer) -> None:
    start = prometheus.scenario("healthy").start
    # The counter's value is what the data says at each moment: 2 canary req/s since the start.
    assert metrics.instant(CANARY_OK, start + timedelta(minutes=10)) == pytest.approx(1200)
    assert metrics.instant(CANARY_OK, start + timedelta(minutes=20)) == pytest.approx(2400)


def test_scalar_nan_and_empty_answers(metrics: PrometheusMetrics) -> None:
    assert metrics.instant("1 + 1", AT) == 2.0
    assert metrics.instant("0 / 0", AT) is None
    assert metrics.instant("sum(vector(0) / 0)", AT) is None
    assert metrics.instant('istio_requests_total{destination_workload="nothing"}', AT) is None


def test_infinite_answers_are_no_data(metrics: PrometheusMetrics) -> None:
    # Prometheus answers a division by zero with +Inf, -Inf or NaN, as a scalar or as a series' value.
    assert metrics.instant("1 / 0", AT) is None
    assert metrics.instant("-1 / 0", AT) is None
    assert metrics.instant("sum(vector(1) / 0)", AT) is None
    assert metrics.instant("sum(vector(-1) / 0)", AT) is None
    start = AT - timedelta(minutes=5)
    assert metrics.series(f"sum({CANARY_OK}) / 0", start, AT, 60) == []
    assert metrics.series(f"-sum({CANARY_OK}) / 0", start, AT, 60) == []


def test_several_series_where_one_is_expected_is_an_error(metrics: PrometheusMetrics) -> None:
    with pytest.raises(MetricsError) as info:
        metrics.instant('istio_requests_total{destination_workload_namespace="healthy"}', AT)
    assert "series where one was expected" in str(info.value)


def test_bad_promql_is_a_one_line_error_with_prometheus_reason(metrics: PrometheusMetrics) -> None:
    with pytest.raises(MetricsError) as info:
        metrics.instant("sum(rate(istio_requests_total[5m])", AT)
    text = info.value.one_line()
    assert "HTTP 400" in text
    assert "parse error" in text
    assert "\n" not in text


def test_range_query_returns_points_at_each_step(metrics: PrometheusMetrics) -> None:
    start = AT - timedelta(minutes=5)
    points = metrics.series(f"sum({CANARY_OK})", start, AT, 60)
    assert [t for t, _ in points] == [start.timestamp() + 60 * i for i in range(6)]
    assert [v for _, v in points] == pytest.approx([1800 + 120 * i for i in range(6)])
    assert metrics.series('sum(istio_requests_total{destination_workload="nothing"})', start, AT, 60) == []


def test_connection_refused_is_fast_and_names_no_credentials() -> None:
    port = free_port()
    with PrometheusMetrics(f"http://reader:s3cret@127.0.0.1:{port}/", token="tok-123", timeout=2) as client:
        started = time.monotonic()
        with pytest.raises(MetricsError) as info:
            client.instant("up", AT)
    assert time.monotonic() - started < 1
    text = info.value.one_line()
    assert text == f"cannot connect to Prometheus at http://127.0.0.1:{port}/"
    assert "s3cret" not in text and "tok-123" not in text and "reader" not in text


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts connections in the backlog, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with PrometheusMetrics(url, timeout=0.3) as client:
            started = time.monotonic()
            with pytest.raises(MetricsError) as info:
                client.instant("up", AT)
            elapsed = time.monotonic() - started
    assert "did not answer within 0.3s" in str(info.value)
    assert elapsed < 2


@dataclass
class Recorded:
    status: int
    body: bytes
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def fake_server() -> Iterator[tuple[str, Recorded]]:
    """A loopback HTTP server answering every request with a fixed status and body; records headers."""
    recorded = Recorded(200, b"")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorded.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            self.send_response(recorded.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorded.body)))
            self.end_headers()
            self.wfile.write(recorded.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_503_is_not_retried_by_default_and_retried_when_asked(fake_server: tuple[str, Recorded]) -> None:
    url, recorded = fake_server
    recorded.status, recorded.body = 503, b'{"status":"error","error":"overloaded"}'
    with PrometheusMetrics(url, timeout=2) as client:
        started = time.monotonic()
        with pytest.raises(MetricsError) as info:
            client.instant("up", AT)
    assert time.monotonic() - started < 1.0
    assert len(recorded.requests) == 1
    assert info.value.one_line() == f"Prometheus at {url} answered HTTP 503: overloaded"
    recorded.requests.clear()
    with PrometheusMetrics(url, timeout=2, retries=2) as client, pytest.raises(MetricsError):
        client.instant("up", AT)
    assert len(recorded.requests) == 3


def test_token_headers_and_explicit_time_are_sent(fake_server: tuple[str, Recorded]) -> None:
    url, recorded = fake_server
    answer = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "7"]}]},
    }
    recorded.body = json.dumps(answer).encode()
    with PrometheusMetrics(url, token="tok-123", headers={"X-Scope-OrgID": "team-a"}) as client:
        assert client.instant("up", datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)) == 7.0
    sent = recorded.requests[0]
    assert sent["authorization"] == "Bearer tok-123"
    assert sent["x-scope-orgid"] == "team-a"
    assert "time=1767614430" in sent["path"]


def test_a_body_that_is_not_json_is_an_error(fake_server: tuple[str, Recorded]) -> None:
    url, recorded = fake_server
    recorded.body = b"<html>login</html>"
    with PrometheusMetrics(url) as client, pytest.raises(MetricsError) as info:
        client.instant("up", AT)
    assert "not JSON" in str(info.value)


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://127.0.0.1/", "http://"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        PrometheusMetrics(url)


def test_redact_url_drops_user_info_and_query() -> None:
    assert redact_url("https://u:p@prom.example:9443/base?x=1#f") == "https://prom.example:9443/base"


def test_a_token_that_is_not_a_valid_header_is_named_as_such_not_as_a_body_problem() -> None:
    # A token read from a file with its newline: the request is refused before it is sent.
    client = PrometheusMetrics(f"http://127.0.0.1:{free_port()}/", token="tok-123\n")
    with client, pytest.raises(MetricsError) as info:
        client.instant("up", AT)
    text = info.value.one_line()
    assert "not JSON" not in text
    assert text.endswith("failed: InvalidHeader")
    assert "tok-123" not in text


def test_a_policy_token_read_with_its_newline_is_sent_without_it(
    fake_server: tuple[str, Recorded], tmp_path: Path
) -> None:
    url, recorded = fake_server
    recorded.body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
        "  git: {url: https://git.example.test/acme/c.git}\n"
        "  images: [{name: app, repository: r.example.test/acme/app}]\n"
        "  canaries:\n"
        "    - name: app-canary\n      route: VirtualService/test/app\n      stable: {subset: ga}\n"
        "      canary: {subset: canary}\n      steps: [50, 100]\n"
        "      analysis:\n"
        f"        prometheus: {{url: '{url}', tokenEnv: PROM_TOKEN}}\n"
        "        stableWorkload: app-ga\n        canaryWorkload: app-canary\n"
        "        checks: [{name: success-rate, min: 99}]\n"
    )
    policy = load_policy(path)
    client = metrics_factory(policy, {"PROM_TOKEN": "tok-123\n"})(policy.spec.canaries[0])
    up = CustomQuery("up", Workload("test", "app-canary"), Workload("test", "app-ga"))
    assert client.measure(up, AT - timedelta(minutes=5), AT) is None
    assert recorded.requests[0]["authorization"] == "Bearer tok-123"


# A credential no masker knows, in the shapes servers and proxies quote refused credentials in.
CANARY_SECRET = "Zq7canaryS3cret0x5f"


@pytest.mark.parametrize(
    "error",
    [
        f"refused Bearer {CANARY_SECRET}",
        f"bad Authorization: Basic {CANARY_SECRET}",
        f"token ghp_{CANARY_SECRET}{CANARY_SECRET} expired",
        f"GET /api/v1/query?access_token={CANARY_SECRET} denied",
        f"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{CANARY_SECRET}.c2ln rejected",
    ],
)
def test_an_error_body_that_quotes_a_credential_is_masked(fake_server: tuple[str, Recorded], error: str) -> None:
    url, recorded = fake_server
    recorded.status, recorded.body = 401, json.dumps({"status": "error", "error": error}).encode()
    with PrometheusMetrics(url) as client, pytest.raises(MetricsError) as info:
        client.instant("up", AT)
    line = info.value.one_line()
    assert line.startswith(f"Prometheus at {url} answered HTTP 401: ") and "***" in line
    assert CANARY_SECRET not in line
