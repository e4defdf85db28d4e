"""Session-wide registries for the registry contract tests: anonymous, Basic auth, token auth, a paging
proxy and a hostile server, each started once on a free loopback port and stopped through its handle."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.registry import (
    LoopbackServer,
    OverloadRegistry,
    PagingProxy,
    QuietHandler,
    RunningRegistry,
    TokenServer,
    make_htpasswd,
    push_tags,
    serve,
    start_registry,
)

PODINFO_TAGS = [
    *("0.1.0", "0.1.1", "0.1.2", "0.1.3", "0.1.9", "0.1.10", "0.1.12"),
    *("0.2.0", "0.2.1", "0.2.2", "0.2.3-rc.1", "v0.2.4"),
    *("1.9", "1.10", "latest", "sha-abc1234"),
]
MANY_TAGS = [f"1.0.{i}" for i in range(150)]
USERS = {"alice": "wonderland-pass-7731"}


@dataclass
class Registries:
    anonymous: RunningRegistry
    basic: RunningRegistry
    token: RunningRegistry
    token_server: TokenServer
    proxy: PagingProxy


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    base = tmp_path_factory.mktemp("registries")
    started: list[RunningRegistry] = []
    token_server = TokenServer(base / "token-server", USERS).start()
    proxy: PagingProxy | None = None
    try:
        anonymous = start_registry(base / "anonymous")
        started.append(anonymous)
        push_tags(anonymous.url, "stefanprodan/podinfo", PODINFO_TAGS)
        push_tags(anonymous.url, "team/many", MANY_TAGS)

        htpasswd = make_htpasswd(base / "htpasswd", USERS)
        basic = start_registry(base / "basic", htpasswd=htpasswd)
        started.append(basic)
        push_tags(basic.url, "private/app", ["1.0.0", "1.1.0", "2.0.0-rc.1"], auth=("alice", USERS["alice"]))

        token = start_registry(
            base / "token",
            token_realm=token_server.realm,
            token_service=token_server.service,
            token_issuer=token_server.issuer,
            token_certs=token_server.cert_path,
        )
        started.append(token)
        push_token = token_server.issue("alice", ["repository:secure/app:pull,push"])
        push_tags(token.url, "secure/app", ["3.0.0", "3.1.0", "3.1.1"], token=push_token)

        proxy = PagingProxy(anonymous.url).start()
        yield Registries(anonymous, basic, token, token_server, proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        for registry in started:
            registry.stop()
        token_server.stop()


@dataclass
class Hostile:
    """A loopback server that answers `tags/list` in broken or hostile ways, by repository name."""

    server: LoopbackServer
    hits: Counter[str] = field(default_factory=Counter)

    @property
    def host(self) -> str:
        return urlsplit(self.server.url).netloc


INVALID_TAGS = ["1.0.0", "1.0.1\n", "x" * 200, "bad tag", "../../etc", "1.0.2", "1.0.3\r\nX-Injected: 1", ""]


@pytest.fixture(scope="session")
def hostile() -> Iterator[Hostile]:
    hits: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            split = urlsplit(self.path)
            path = split.path
            with lock:
                hits[path] += 1
                count = hits[path]
            parts = path.split("/")
            # /v2/hostile/<case>/tags/list
            case = parts[3].split("-")[0] if len(parts) > 4 else ""
            name = "/".join(parts[2:4])
            last = parse_qs(split.query).get("last", [""])[0]
            if path == "/v2/":
                self.send_json(200, {})
            elif case == "invalid":
                self.send_json(200, {"name": name, "tags": INVALID_TAGS})
            elif case == "loop":
                following = {"": "a", "a": "b", "b": "a"}[last]
                self.send_json(
                    200,
                    {"name": name, "tags": [f"1.0.{count}"]},
                    {"Link": f'<{path}?n=1&last={following}>; rel="next"'},
                )
            elif case == "offsite":
                self.send_json(
                    200,
                    {"name": name, "tags": ["1.0.0"]},
                    {"Link": f'<http://127.0.0.2:9{path}>; rel="next"'},
                )
            elif case == "ratelimit":
                if count == 1:
                    self.send_json(429, {"errors": [{"code": "TOOMANYREQUESTS"}]}, {"Retry-After": "2"})
                else:
                    self.send_json(200, {"name": name, "tags": ["1.0.0", "1.1.0"]})
            elif case == "longwait":
                self.send_json(429, {"errors": []}, {"Retry-After": "3600"})
            elif case == "flaky":
                if count <= 2:
                    self.send_json(503, {"errors": []})
                else:
                    self.send_json(200, {"name": name, "tags": ["2.0.0"]})
            elif case == "down":
                self.send_json(500, {"errors": [{"code": "UNKNOWN"}]})
            elif case == "garbage":
                self.send_bytes(200, b"<html>this is not json", {"Content-Type": "text/html"})
            elif case == "wrongshape":
                self.send_json(200, {"name": name, "tags": "1.0.0"})
            elif case == "numbers":
                self.send_json(200, {"name": name, "tags": [1, 2, 3]})
            elif case == "null":
                self.send_json(200, {"name": name, "tags": None})
            elif case == "etag":
                if self.headers.get("If-None-Match") == '"list-v1"':
                    self.send_bytes(304, b"", {"ETag": '"list-v1"'})
                else:
                    self.send_json(200, {"name": name, "tags": ["4.0.0", "4.1.0"]}, {"ETag": '"list-v1"'})
            else:
                self.send_json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})

    server = serve(Handler)
    try:
        yield Hostile(server, hits)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def overload() -> Iterator[OverloadRegistry]:
    server = OverloadRegistry().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Docker config folder so that no login of the machine leaks into a test."""
    folder = tmp_path / "docker"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"auths": {}}), encoding="utf-8")
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


@pytest.fixture
def hostile_host(hostile: Hostile) -> str:
    return hostile.host
