"""Real OCI registries on loopback for tests: Debian's `docker-registry`, a token server, a paging proxy.

`start_registry` runs `docker-registry serve` on a free 127.0.0.1 port with its storage and config in a
given directory (anonymous, htpasswd Basic auth, or token auth); `push_tags` pushes a small image under
many tags over plain HTTP (blob upload + manifest PUT); `TokenServer` signs JWTs the registry trusts;
`PagingProxy` pages `tags/list` and adds `Link` headers, which this registry never sends. Each server is
stopped through its own handle.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.server
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gitbot.demo.localservers import push_image

REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningRegistry:
    """A `docker-registry` process: its base URL (`http://127.0.0.1:PORT`), host, storage root and log."""

    url: str
    host: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_registry(
    workdir: Path,
    *,
    htpasswd: Path | None = None,
    token_realm: str | None = None,
    token_service: str = "",
    token_issuer: str = "",
    token_certs: Path | None = None,
) -> RunningRegistry:
    """Start `docker-registry` with storage and config under `workdir`; wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    lines = [
        "version: 0.1",
        "log: {level: warn}",
        "storage:",
        f"  filesystem: {{rootdirectory: {json.dumps(str(storage))}}}",
        "  delete: {enabled: true}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if htpasswd is not None:
        lines += ["auth:", f"  htpasswd: {{realm: gitbot-test, path: {json.dumps(str(htpasswd))}}}"]
    elif token_realm is not None:
        assert token_certs is not None
        lines += [
            "auth:",
            "  token:",
            f"    realm: {json.dumps(token_realm)}",
            f"    service: {json.dumps(token_service)}",
            f"    issuer: {json.dumps(token_issuer)}",
            f"    rootcertbundle: {json.dumps(str(token_certs))}",
        ]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = workdir / "registry.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    running = RunningRegistry(url=url, host=f"127.0.0.1:{port}", root=storage, log=log, process=process)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(f"{url}/v2/", timeout=1)
            return running
        except httpx.TransportError:
            if time.monotonic() > deadline:
                running.stop()
                raise RuntimeError("docker-registry did not answer within 15 s") from None
            time.sleep(0.05)


def make_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    """Write a bcrypt htpasswd file for `users` with Apache's `htpasswd`."""
    lines = []
    for user, password in users.items():
        out = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True).stdout
        lines.append(out.strip())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def push_tags(
    registry_url: str,
    repo: str,
    tags: Iterable[str],
    *,
    auth: tuple[str, str] | None = None,
    token: str | None = None,
) -> str:
    """Push one small image to `repo` under every tag in `tags`; return the manifest digest.

    The config and layer blobs are uploaded once (POST upload, PUT with digest), then the manifest is
    PUT once per tag. `auth` is Basic user/password, `token` a bearer token with push scope.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=registry_url, auth=auth, headers=headers, timeout=10, trust_env=False) as client:
        return push_image(client, repo, tags, content=f"gitbot test layer for {repo}\n")


def clone_tags_on_disk(storage: Path, repo: str, source_tag: str, tags: Iterable[str]) -> int:
    """Add `tags` to `repo` by copying `source_tag`'s link in the registry's filesystem storage.

    For large tag counts (benchmarks) where one manifest PUT per tag would take minutes; the registry
    lists tags from these directories. Returns how many tags were written.
    """
    base = storage / "docker" / "registry" / "v2" / "repositories" / repo / "_manifests" / "tags"
    link = (base / source_tag / "current" / "link").read_bytes()
    digest_hex = link.decode().split(":", 1)[1].strip()
    count = 0
    for tag in tags:
        current = base / tag / "current"
        index = base / tag / "index" / "sha256" / digest_hex
        current.mkdir(parents=True, exist_ok=True)
        index.mkdir(parents=True, exist_ok=True)
        (current / "link").write_bytes(link)
        (index / "link").write_bytes(link)
        count += 1
    return count


# -- token server -----------------------------------------------------------------------------------


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The key id `docker-registry` derives from a certificate's public key (libtrust format).

    SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes, base32, in groups of four joined by `:`.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def send_json(self, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_bytes(status, data, {"Content-Type": "application/json", **(headers or {})})

    def send_bytes(self, status: int, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class LoopbackServer:
    server: http.server.ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> LoopbackServer:
    """Run `handler` on a free 127.0.0.1 port in a daemon thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return LoopbackServer(server, thread)


class Served:
    """The address and the stop of a helper whose `start` puts its handler on a `LoopbackServer`."""

    _server: LoopbackServer | None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


@dataclass
class TokenServer(Served):
    """A token endpoint for the registry's `auth.token` config: checks Basic auth, signs RS256 JWTs.

    `users` may pull and push; anonymous callers get no token (401). `requests` counts token requests.
    """

    workdir: Path
    users: Mapping[str, str]
    issuer: str = "gitbot-test-issuer"
    service: str = "gitbot-test-registry"
    requests: int = 0
    _server: LoopbackServer | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitbot test token signer")])
        now = time.time()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now - 3600))
            .not_valid_after(_utc(now + 86400))
            .sign(self._key, hashes.SHA256())
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cert_path = self.workdir / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._kid = libtrust_key_id(self._key.public_key())

    def issue(self, subject: str, scopes: Iterable[str]) -> str:
        """A signed token for `subject` granting `scopes` (`repository:NAME:pull,push`)."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    @property
    def realm(self) -> str:
        assert self._server is not None
        return f"{self._server.url}/token"

    def start(self) -> TokenServer:
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                query = parse_qs(urlsplit(self.path).query)
                header = self.headers.get("Authorization", "")
                user = None
                if header.startswith("Basic "):
                    name, _, word = base64.b64decode(header[6:]).decode().partition(":")
                    if outer.users.get(name) == word:
                        user = name
                if user is None or query.get("service", [""])[0] != outer.service:
                    self.send_json(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                token = outer.issue(user, query.get("scope", []))
                self.send_json(200, {"token": token, "access_token": token, "expires_in": 300})

        self._server = serve(Handler)
        return self


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


# -- paging proxy -----------------------------------------------------------------------------------


@dataclass
class PagingProxy(Served):
    """A loopback proxy in front of an anonymous registry that pages `tags/list` (sorted) with `Link`.

    `default_page` is used when the client sends no `n`. Other `/v2/` paths are answered by the registry.
    `requests` counts requests the proxy received.
    """

    upstream: str
    default_page: int = 100
    requests: int = 0
    _server: LoopbackServer | None = field(default=None, repr=False)

    def start(self) -> PagingProxy:
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                split = urlsplit(self.path)
                upstream = httpx.get(f"{outer.upstream}{split.path}", timeout=10)
                if not split.path.endswith("/tags/list") or upstream.status_code != 200:
                    self.send_bytes(upstream.status_code, upstream.content, {"Content-Type": "application/json"})
                    return
                body = upstream.json()
                tags = sorted(body.get("tags") or [])
                query = parse_qs(split.query)
                size = int(query.get("n", [outer.default_page])[0])
                last = query.get("last", [""])[0]
                rest = [tag for tag in tags if tag > last] if last else tags
                page = rest[:size]
                headers = {"Content-Type": "application/json"}
                if len(rest) > size:
                    following = f"{split.path}?{urlencode({'n': size, 'last': page[-1]})}"
                    headers["Link"] = f'<{following}>; rel="next"'
                self.send_json(200, {"name": body.get("name"), "tags": page}, headers)

        self._server = serve(Handler)
        return self


@contextlib.contextmanager
def running(start: Callable[[], RunningRegistry]) -> Iterator[RunningRegistry]:
    """Start a registry with `start` and stop it on exit."""
    registry = start()
    try:
        yield registry
    finally:
        registry.stop()


# -- a registry that answers too much, too slowly or too deeply ---------------------------------------


@dataclass
class OverloadRegistry(Served):
    """A loopback server whose `tags/list` answers break a client's limits, by repository name.

    `/v2/<case>/<anything>/tags/list` with case `huge` (a body of `body_bytes` bytes of valid JSON, sent in
    64 KiB chunks until the client hangs up), `many` (`tag_count` tags in one answer), `paged`
    (pages of `page_tags` tags without end, each with a `Link` to the next), `drip` (headers at once, then
    one body byte every `drip_seconds`), `headdrip` (one header byte every `drip_seconds`) and `deep` (a
    tag list nested `depth` arrays deep). `sent` counts the bytes written per case; the server stops
    writing when the client closes the connection.
    """

    body_bytes: int = 64 * 1024 * 1024
    tag_count: int = 1000
    page_tags: int = 1000
    drip_seconds: float = 0.05
    drip_bytes: int = 10_000
    depth: int = 100_000
    sent: dict[str, int] = field(default_factory=dict)
    _server: LoopbackServer | None = field(default=None, repr=False)

    def start(self) -> OverloadRegistry:
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                split = urlsplit(self.path)
                parts = split.path.split("/")
                case = parts[2] if len(parts) > 4 else ""
                try:
                    self._answer(case, split.path, parse_qs(split.query))
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client hung up: what it was meant to do

            def _answer(self, case: str, path: str, query: Mapping[str, list[str]]) -> None:
                if case == "huge":
                    head, tail = b'{"tags": ["1.0.0"', b"]}"
                    blank = b" " * 65536
                    gap = outer.body_bytes - len(head) - len(tail)
                    middle = (blank[: min(65536, gap - done)] for done in range(0, gap, 65536))
                    self._stream(case, outer.body_bytes, [head, *middle, tail], 0)
                elif case == "many":
                    tags = [f"1.0.{i}" for i in range(outer.tag_count)]
                    self.send_json(200, {"name": "many/app", "tags": tags})
                elif case == "paged":
                    page = int(query.get("page", ["0"])[0])
                    tags = [f"{page}.0.{i}" for i in range(outer.page_tags)]
                    link = f'<{path}?page={page + 1}>; rel="next"'
                    self.send_json(200, {"name": "paged/app", "tags": tags}, {"Link": link})
                elif case == "drip":
                    self._stream(case, outer.drip_bytes, (b" " for _ in range(outer.drip_bytes)), outer.drip_seconds)
                elif case == "headdrip":
                    # The status line, then header bytes one at a time: no answer is ever complete.
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    outer.sent[case] = 0
                    for _ in range(outer.drip_bytes):
                        self.wfile.write(b"X")
                        self.wfile.flush()
                        outer.sent[case] += 1
                        time.sleep(outer.drip_seconds)
                elif case == "deep":
                    self.send_bytes(200, b'{"tags": ' + b"[" * outer.depth + b"]" * outer.depth + b"}")
                else:
                    self.send_json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})

            def _stream(self, case: str, length: int, chunks: Iterable[bytes], pause: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                outer.sent[case] = 0
                for chunk in chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    outer.sent[case] += len(chunk)
                    if pause:
                        time.sleep(pause)

        self._server = serve(Handler)
        return self
