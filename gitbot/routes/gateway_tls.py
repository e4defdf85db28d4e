"""Gateway API `TLSRoute` (TLS traffic): weights of `spec.rules[].backendRefs[]`, backends named by backendRef name."""

from __future__ import annotations

from gitbot.routes.gateway_http import BACKEND_FIELDS, DEFAULT_WEIGHT
from gitbot.routes.kind import RuleLists

TLS_ROUTE = RuleLists(
    kind="TLSRoute",
    group="gateway.networking.k8s.io",
    source="tlsroute",
    noun="a TLSRoute",
    selectors={"backendRef": "name"},
    section="rules",
    entries="backendRefs",
    fields=BACKEND_FIELDS,
    default_weight=DEFAULT_WEIGHT,
)
