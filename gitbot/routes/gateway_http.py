"""Gateway API `HTTPRoute`: weights of `spec.rules[].backendRefs[]`, backends named by backendRef name."""

from __future__ import annotations

from gitbot.routes.kind import RuleLists

# How a Gateway API backendRef is identified, in every route kind that has them.
BACKEND_FIELDS = ("group", "kind", "name", "namespace", "port")
# The weight of a backendRef that writes none; the first step writes explicit weights.
DEFAULT_WEIGHT = 1

HTTP_ROUTE = RuleLists(
    kind="HTTPRoute",
    group="gateway.networking.k8s.io",
    source="httproute",
    noun="an HTTPRoute",
    selectors={"backendRef": "name"},
    section="rules",
    entries="backendRefs",
    fields=BACKEND_FIELDS,
    default_weight=DEFAULT_WEIGHT,
)
