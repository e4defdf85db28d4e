"""The traffic route kinds gitbot reads and moves weights in, one module each, and their registry.

`KINDS` lists them; `recognise` finds the kind of a scanned document, `named` the kind of a policy's
`route: Kind/namespace/name`. The interface a kind implements is `gitbot.routes.kind.RouteKind`.
"""

from __future__ import annotations

from gitbot.routes.gateway_grpc import GRPC_ROUTE
from gitbot.routes.gateway_http import HTTP_ROUTE
from gitbot.routes.gateway_tcp import TCP_ROUTE
from gitbot.routes.gateway_tls import TLS_ROUTE
from gitbot.routes.istio import VIRTUAL_SERVICE
from gitbot.routes.kind import RouteKind, WeightSlot

KINDS: tuple[RouteKind, ...] = (VIRTUAL_SERVICE, HTTP_ROUTE, GRPC_ROUTE, TCP_ROUTE, TLS_ROUTE)

__all__ = ["KINDS", "RouteKind", "WeightSlot", "named", "owner", "recognise"]


def recognise(kind: str, api: str) -> RouteKind | None:
    """The route kind whose weights a document of `kind` and `apiVersion` `api` holds, if any."""
    return next((k for k in KINDS if k.recognises(kind, api)), None)


def owner(kind: str, api: str) -> RouteKind | None:
    """The route kind of a document of `kind` in `api`'s group, whatever its version (for edits of any pointer)."""
    group, slash, _ = api.partition("/")
    return next((k for k in KINDS if slash and k.kind == kind and k.group == group), None)


def named(kind: str) -> RouteKind:
    """The route kind a policy names by `kind` (one of `KINDS`; the policy schema admits no other)."""
    return next(k for k in KINDS if k.kind == kind)
