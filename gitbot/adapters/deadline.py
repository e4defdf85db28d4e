"""A total deadline for one HTTP request (headers and body, retries included), not only for each read.

Owns the one way gitbot's clients on `requests` (the Prometheus and GitHub adapters) and on httpx (the
notifiers) bound a request in time. A per-read timeout does not: a server that sends a byte every few
seconds holds a caller for as long as it likes. Here a watchdog timer, armed when the request starts,
shuts down the sockets that request uses when the deadline passes, so the blocked read returns at once;
the request then fails with `DeadlineExceeded` (a `requests` Timeout). The same watchdog for httpx is in
`gitbot.adapters.deadline_httpx`, apart, so that loading the notifiers does not load `requests`.
Nothing here knows about Prometheus, GitHub or what an answer means.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlineExceeded(requests.exceptions.Timeout):
    """A request was cut off at its total deadline (`seconds`)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s; cut off")
        self.seconds = seconds


class _Watch:
    """The connections one request uses, and whether its deadline cut them."""

    def __init__(self) -> None:
        self.cut = threading.Event()
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()

    def add(self, connection: HTTPConnection) -> None:
        with self._lock:
            if self.cut.is_set():
                # A retry after the cut would start the clock again: it fails at once instead.
                raise ConnectionAbortedError("the request's deadline has passed")
            self._connections.append(connection)

    def fire(self) -> None:
        with self._lock:
            self.cut.set()
            for connection in self._connections:
                sock = connection.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


# The watch of the request this thread is sending (urllib3 sends a request on the caller's thread).
_current = threading.local()


def _enter(connection: HTTPConnection) -> None:
    watch: _Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(connection)


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _enter(self)
        super().request(*args, **kwargs)


class _TLSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _enter(self)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS: Mapping[str, type[HTTPConnectionPool]] = {"http": _Pool, "https": _TLSPool}


class DeadlineAdapter(HTTPAdapter):
    """`requests` transport adapter: each request (its retries and its body included) ends within `deadline`
    seconds or fails with DeadlineExceeded. Mount it where the client would mount its own HTTPAdapter."""

    def __init__(self, deadline: float, **kwargs: Any) -> None:
        if deadline <= 0:
            raise ValueError("the deadline must be more than 0 seconds")
        self.deadline = deadline
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        watch = _Watch()
        outer = getattr(_current, "watch", None)
        _current.watch = watch
        timer = threading.Timer(self.deadline, watch.fire)
        timer.daemon = True
        timer.start()
        try:
            response = super().send(request, *args, **kwargs)
            if not kwargs.get("stream", args[0] if args else False):
                # Read the body while the watch lasts: requests would read it after `send` returns.
                _ = response.content
        except (requests.RequestException, OSError) as exc:
            if watch.cut.is_set():
                raise DeadlineExceeded(self.deadline) from exc
            raise
        finally:
            timer.cancel()
            _current.watch = outer
        if watch.cut.is_set():
            # A body without a length ends where the cut closed it: what arrived is not the whole answer.
            raise DeadlineExceeded(self.deadline)
        return response
