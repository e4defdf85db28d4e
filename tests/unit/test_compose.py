"""The composition root: each canary's Prometheus client carries the token its own policy entry names."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from gitbot.commands.compose import metrics_factory
from gitbot.config import load_policy
from gitbot.ports import CustomQuery, Workload

REPO = Path(__file__).resolve().parents[2]


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization", ""))
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def prometheus_url() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_two_canaries_on_one_server_use_their_own_tokens(tmp_path: Path, prometheus_url: str) -> None:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    start = text.index("    - name: podinfo\n      route:")
    end = text.index("  notifications:")
    canary = text[start:end].replace('"http://prometheus.istio-system:9090"', f'"{prometheus_url}"')
    first = canary.replace("prometheus: {url:", "prometheus: {tokenEnv: TOKEN_A, url:")
    second = canary.replace("name: podinfo\n", "name: podinfo-b\n").replace(
        "prometheus: {url:", "prometheus: {tokenEnv: TOKEN_B, url:"
    )
    path = tmp_path / "production.yaml"
    path.write_text(text[:start] + first + second + text[end:], encoding="utf-8")
    policy = load_policy(path)
    factory = metrics_factory(policy, {"TOKEN_A": "token-a", "TOKEN_B": "token-b"})
    now = datetime(2026, 1, 5, tzinfo=UTC)

    for settings in policy.spec.canaries:
        # A custom query is passed through as written: `up` has no samples on the recording server.
        assert (
            factory(settings).measure(
                CustomQuery("up", Workload("t", "a"), Workload("t", "b")), now - timedelta(minutes=5), now
            )
            is None
        )

    assert _Recorder.seen == ["Bearer token-a", "Bearer token-b"]
