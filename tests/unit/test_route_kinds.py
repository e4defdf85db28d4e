"""Route kinds behind one interface: Gateway API GRPCRoute, TCPRoute and TLSRoute weights are found, named by
a policy's `route:` and moved like an HTTPRoute's, and what gitbot writes still validates against their CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gitbot import routes
from gitbot.canary import CanaryDecision
from gitbot.config import load_policy
from gitbot.domain import Destination
from gitbot.errors import ConfigError
from gitbot.manifests import ScanCache, scan_text, scan_tree
from gitbot.rollout import Observation, read_route, step_plan
from tests.crd_schemas import validator_for

REPO = Path(__file__).resolve().parents[2]
ROUTES = Path(__file__).resolve().parent / "routes"
FILE = "clusters/production/routing.yaml"
# Kind -> (its manifest, the port its backends listen on).
KINDS = {
    "GRPCRoute": ("grpcroute.yaml", "9999"),
    "TCPRoute": ("tcproute.yaml", "9898"),
    "TLSRoute": ("tlsroute.yaml", "8443"),
}


def policy_for(tmp_path: Path, route: str, stable: str, canary: str) -> Path:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    text = text.replace("VirtualService/test/podinfo", route)
    text = text.replace("stable: {subset: ga}", f"stable: {stable}")
    text = text.replace("canary: {subset: canary}", f"canary: {canary}")
    path = tmp_path / "production.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def loaded(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def schema_errors(doc: Any) -> list[str]:
    validator = validator_for(doc)
    assert validator is not None, f"no CRD schema for {doc.get('kind')}"
    return [error.message for error in validator.iter_errors(doc)]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_backend_weights_are_targets_with_typed_destinations(kind: str) -> None:
    text = (ROUTES / KINDS[kind][0]).read_text(encoding="utf-8")
    assert schema_errors(loaded(text)) == []
    found = scan_text(FILE, text)
    assert [(t.resource, t.pointer, t.route, t.value, t.source) for t in found] == [
        (f"{kind}/test/podinfo", "/spec/rules/0/backendRefs/0/weight", 0, "90", kind.lower()),
        (f"{kind}/test/podinfo", "/spec/rules/0/backendRefs/1/weight", 0, "10", kind.lower()),
    ]
    port = KINDS[kind][1]
    assert found[1].backend == Destination((("name", "podinfo-canary"), ("port", port)))
    assert found[1].destination == f"name=podinfo-canary,port={port}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_canary_step_moves_only_the_two_weights_and_stays_valid(kind: str, tmp_path: Path) -> None:
    policy = load_policy(
        policy_for(tmp_path, f"{kind}/test/podinfo", "{backendRef: podinfo-ga}", "{backendRef: podinfo-canary}")
    )
    text = (ROUTES / KINDS[kind][0]).read_text(encoding="utf-8")
    route = read_route(policy, 0, scan_text(FILE, text))
    assert route.weight == 10
    plan = step_plan(
        policy, route, CanaryDecision("step", 10, 50, "test"), Observation(None, None, None), {FILE: text}, to=50
    )
    after = dict(plan.files)[FILE]
    # Only the two weights change, in place: every other character is as it was.
    assert after == text.replace("weight: 90", "weight: 50").replace("weight: 10", "weight: 50")
    assert [t.value for t in scan_text(FILE, after) if t.kind == "weight"] == ["50", "50"]
    assert schema_errors(loaded(after)) == []


def test_the_crd_schemas_judge_weights() -> None:
    doc = loaded((ROUTES / "tcproute.yaml").read_text(encoding="utf-8"))
    doc["spec"]["rules"][0]["backendRefs"][0]["weight"] = 1000001
    assert schema_errors(doc) != []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_gateway_route_names_its_destinations_by_backend_ref(kind: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"a {kind} names its destinations by backendRef"):
        load_policy(policy_for(tmp_path, f"{kind}/test/podinfo", "{subset: ga}", "{subset: canary}"))


def test_a_policy_route_names_a_known_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="route"):
        load_policy(policy_for(tmp_path, "UDPRoute/test/podinfo", "{backendRef: a}", "{backendRef: b}"))


def test_every_kind_is_registered_once_by_kind_and_source() -> None:
    assert [k.kind for k in routes.KINDS] == ["VirtualService", "HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"]
    assert len({k.source for k in routes.KINDS}) == len(routes.KINDS)
    assert routes.recognise("GRPCRoute", "gateway.networking.k8s.io/v1") is routes.named("GRPCRoute")
    assert routes.recognise("GRPCRoute", "example.com/v1") is None
    assert routes.recognise("VirtualService", "networking.istio.io/v2") is None
    assert routes.owner("VirtualService", "networking.istio.io/v2") is routes.named("VirtualService")


def test_a_cached_scan_gives_back_the_typed_destination(tmp_path: Path) -> None:
    text = (ROUTES / "grpcroute.yaml").read_text(encoding="utf-8")
    (tmp_path / "routes.yaml").write_text(text, encoding="utf-8")
    first = ScanCache(tmp_path / "cache")
    fresh = scan_tree(tmp_path, ["routes.yaml"], cache=first).targets
    first.save()
    again = ScanCache(tmp_path / "cache")
    cached = scan_tree(tmp_path, ["routes.yaml"], cache=again).targets
    assert again.hits == 1
    assert cached == fresh
    assert [t.backend for t in cached] == [
        Destination((("name", "podinfo-ga"), ("port", "9999"))),
        Destination((("name", "podinfo-canary"), ("port", "9999"))),
    ]
