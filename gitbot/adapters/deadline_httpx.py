"""A total deadline for one httpx request (the notifiers'), as `gitbot.adapters.deadline` gives `requests`.

A watchdog timer, armed when the request starts, shuts down the sockets that request opened when the
deadline passes, so a server that sends a byte every few seconds cannot hold the caller. Kept apart from
the `requests` variant so that a command which only notifies does not import `requests`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Iterator, Mapping

import httpcore


class HttpxDeadline:
    """The same watchdog for one httpx client: pass `trace` in a request's extensions, run it `within()`.

    One request at a time per instance (the notifiers post from one thread per notification).
    """

    def __init__(self, deadline: float) -> None:
        if deadline <= 0:
            raise ValueError("the deadline must be more than 0 seconds")
        self.deadline = deadline
        self.cut = threading.Event()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if isinstance(stream, httpcore.NetworkStream) else None
            if isinstance(sock, socket.socket):
                self._sockets.add(sock)

    def _fire(self) -> None:
        self.cut.set()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def within(self) -> Iterator[None]:
        """Run one request; its sockets are shut down when the deadline passes (then `cut` is set)."""
        self.cut.clear()
        timer = threading.Timer(self.deadline, self._fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
