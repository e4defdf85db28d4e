"""Validators for Istio VirtualService and Gateway API HTTPRoute, GRPCRoute, TCPRoute and TLSRoute documents,
built from the CRDs' own `openAPIV3Schema` (one validator per API version): Istio's and HTTPRoute's in
`shared/schemas/`, the GRPCRoute, TCPRoute and TLSRoute CRDs of the same Gateway API release in `tests/schemas/`
(see its SOURCES.tsv)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator
from ruamel.yaml import YAML

from tests.shared import require, shared_dir

SCHEMAS = shared_dir("schemas")
# The Gateway API route kinds beyond HTTPRoute, kept with the tests (Apache-2.0, from kubernetes-sigs/gateway-api).
OWN_SCHEMAS = Path(__file__).resolve().parent / "schemas"
KINDS = {("networking.istio.io", "VirtualService")} | {
    ("gateway.networking.k8s.io", kind) for kind in ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")
}


@lru_cache(maxsize=1)
def validators() -> dict[str, Any]:
    """`group/version` + `/Kind` -> validator, for every version of the route CRDs."""
    found: dict[str, Any] = {}
    for path in [*sorted(require("schemas").glob("*.yaml")), *sorted(OWN_SCHEMAS.glob("*.yaml"))]:
        for doc in YAML(typ="safe", pure=True).load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            if (spec["group"], spec["names"]["kind"]) not in KINDS:
                continue
            for version in spec["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                key = f"{spec['group']}/{version['name']}/{spec['names']['kind']}"
                found[key] = OAS30Validator(schema)
    return found


def validator_for(doc: Any) -> Any | None:
    """The validator for a loaded document, or None when it is not one of the route kinds."""
    if not isinstance(doc, dict) or (str(doc.get("apiVersion", "")).split("/")[0], doc.get("kind")) not in KINDS:
        return None
    return validators()[f"{doc['apiVersion']}/{doc['kind']}"]
