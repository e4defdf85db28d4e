"""Gateway API `GRPCRoute` (gRPC traffic): weights of `spec.rules[].backendRefs[]`, backends named by their name."""

from __future__ import annotations

from gitbot.routes.gateway_http import BACKEND_FIELDS, DEFAULT_WEIGHT
from gitbot.routes.kind import RuleLists

GRPC_ROUTE = RuleLists(
    kind="GRPCRoute",
    group="gateway.networking.k8s.io",
    source="grpcroute",
    noun="a GRPCRoute",
    selectors={"backendRef": "name"},
    section="rules",
    entries="backendRefs",
    fields=BACKEND_FIELDS,
    default_weight=DEFAULT_WEIGHT,
)
