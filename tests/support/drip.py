"""A loopback HTTP server that answers slowly on purpose: one byte every `interval` seconds.

Owns: `DripServer`, a small ThreadingHTTPServer for deadline tests. Requests that `drips(method, path)` picks
get a status line and then header bytes one at a time (`mode="headers"`: the answer never completes) or
full headers and then body bytes one at a time (`mode="body"`); every other request is passed to `upstream`
(a real server's root URL, e.g. the GitHub fake's) and its answer relayed with that URL replaced by this
server's, or answered 404 without one.
`sent` counts the bytes dripped, `dripped` the requests that were; the server stops writing when the client
hangs up, and after `limit` bytes.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

Picker = Callable[[str, str], bool]


@dataclass
class DripServer:
    drips: Picker = lambda _method, _path: True
    mode: str = "headers"
    interval: float = 0.05
    limit: int = 2000
    upstream: str | None = None
    sent: int = 0
    dripped: list[tuple[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def start(self) -> DripServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    if outer.drips(self.command, self.path):
                        with outer._lock:
                            outer.dripped.append((self.command, self.path))
                        self._drip()
                    else:
                        self._relay(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client hung up: what it was meant to do

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def _drip(self) -> None:
                self.close_connection = True
                if outer.mode == "headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    chunks = (b"X" for _ in range(outer.limit))
                else:
                    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {outer.limit}\r\n\r\n"
                    self.wfile.write(head.encode())
                    chunks = (b" " for _ in range(outer.limit))
                self.wfile.flush()
                for chunk in chunks:
                    time.sleep(outer.interval)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    with outer._lock:
                        outer.sent += len(chunk)

            def _relay(self, body: bytes) -> None:
                if outer.upstream is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = urlsplit(outer.upstream)
                connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    connection.request(self.command, self.path, body=body or None, headers=headers)
                    answer = connection.getresponse()
                    data = answer.read()
                finally:
                    connection.close()
                # Links in the answer name this server, as behind a reverse proxy with its own address.
                root = outer.upstream.rstrip("/")
                data = data.replace(root.encode(), outer.url.encode())
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value.replace(root, outer.url))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> DripServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()
