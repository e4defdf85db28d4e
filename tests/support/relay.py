"""A TCP relay that makes a loopback server reachable under this machine's host name.

gitbot speaks plain HTTP to loopback registries on its own, so a registry that must be reached as a remote
one (TLS expected) is put behind a relay on the address the host name resolves to. The relay counts the
connections it was given, so a test can tell one attempt from retries.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator


class Relay(socketserver.ThreadingTCPServer):
    """Copies bytes both ways between each client and `target`; counts the connections it was given."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.connections = 0
        super().__init__(address, RelayHandler)


class RelayHandler(socketserver.BaseRequestHandler):
    server: Relay

    def handle(self) -> None:
        self.server.connections += 1
        with socket.create_connection(self.server.target, timeout=5) as upstream:

            def pump(source: socket.socket, sink: socket.socket) -> None:
                try:
                    while data := source.recv(65536):
                        sink.sendall(data)
                except OSError:
                    pass
                finally:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join(timeout=5)


@contextlib.contextmanager
def relay_by_host_name(target: str) -> Iterator[tuple[str, Relay]]:
    """`<host name>:<port>` that reaches `target` (`host:port` on loopback), and the relay behind it."""
    name = socket.gethostname()
    host, port = target.rsplit(":", 1)
    relay = Relay((socket.gethostbyname(name), 0), (host, int(port)))
    thread = threading.Thread(target=relay.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{name}:{relay.server_address[1]}", relay
    finally:
        relay.shutdown()
        relay.server_close()
        thread.join(timeout=5)
