"""Route kinds behind one interface: Gateway API GRPCRoute, TCPRoute and TLSRoute weights are found, named by
a policy's `route:` and moved like an HTTPRoute's, and what gitbot writes still validates against their CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gitbot import routes
from gitbot.canary import CanaryDecision
from gitbot.cli import main
from gitbot.config import load_policy
from gitbot.domain import Assignment, Destination
from gitbot.edits import apply_assignments
from gitbot.errors import ConfigError, EditError
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


WEIGHTLESS = ROUTES / "httproute-weightless.yaml"


def test_a_backend_without_a_weight_beside_one_with_a_weight_is_an_implicit_target() -> None:
    text = WEIGHTLESS.read_text(encoding="utf-8")
    assert schema_errors(loaded(text)) == []
    found = scan_text(FILE, text)
    # The second rule's lone backend writes no weight beside it: Gateway API's default sends it all, nothing to move.
    assert [(t.pointer, t.value, t.implicit, t.line) for t in found] == [
        ("/spec/rules/0/backendRefs/0/weight", "1", True, 15),
        ("/spec/rules/0/backendRefs/1/weight", "0", False, 19),
    ]


def test_the_first_step_writes_the_missing_weight_in_the_files_own_indentation(tmp_path: Path) -> None:
    policy = load_policy(
        policy_for(tmp_path, "HTTPRoute/test/podinfo", "{backendRef: podinfo-ga}", "{backendRef: podinfo-canary}")
    )
    text = WEIGHTLESS.read_text(encoding="utf-8")
    route = read_route(policy, 0, scan_text(FILE, text))
    assert (route.weight, route.groups[0].stable_weight) == (0, 100)
    plan = step_plan(
        policy, route, CanaryDecision("step", 0, 10, "test"), Observation(None, None, None), {FILE: text}, to=10
    )
    after = dict(plan.files)[FILE]
    assert after == text.replace(
        "port: 9898  # the GA Service\n", "port: 9898  # the GA Service\n                    weight: 90\n"
    ).replace("weight: 0\n", "weight: 10\n")
    assert schema_errors(loaded(after)) == []
    before_doc, after_doc = loaded(text), loaded(after)
    before_doc["spec"]["rules"][0]["backendRefs"][0]["weight"] = 90
    before_doc["spec"]["rules"][0]["backendRefs"][1]["weight"] = 10
    assert after_doc == before_doc
    # From then on the weights are written, and the next step is an ordinary one.
    again = read_route(policy, 0, scan_text(FILE, after))
    assert [t.implicit for t in (again.groups[0].stable, again.groups[0].canary)] == [False, False]
    assert again.weight == 10


def test_default_weights_that_are_not_whole_percents_are_refused(tmp_path: Path) -> None:
    policy = load_policy(
        policy_for(tmp_path, "HTTPRoute/test/podinfo", "{backendRef: podinfo-ga}", "{backendRef: podinfo-canary}")
    )
    text = WEIGHTLESS.read_text(encoding="utf-8").replace("weight: 0\n", "weight: 2\n")
    with pytest.raises(ConfigError, match="not whole percents of the route's traffic"):
        read_route(policy, 0, scan_text(FILE, text))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_missing_weight_is_added_to_flow_and_block_entries(newline: str) -> None:
    text = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r, namespace: web}\n"
        "spec:\n  rules:\n  - backendRefs:\n    - {name: app-ga, port: 80}\n    - name: app-canary\n"
        "      port: 80\n    - {name: app-old, port: 80, weight: 0}"
    ).replace("\n", newline)
    assignments = [
        Assignment(0, "/spec/rules/0/backendRefs/0/weight", "60"),
        Assignment(0, "/spec/rules/0/backendRefs/1/weight", "40"),
    ]
    after = apply_assignments(text, assignments, source="r.yaml")
    assert after == text.replace("port: 80}", "port: 80, weight: 60}", 1).replace(
        f"      port: 80{newline}", f"      port: 80{newline}      weight: 40{newline}"
    )
    assert [t.value for t in scan_text("r.yaml", after)] == ["60", "40", "0"]
    assert schema_errors(loaded(after)) == []


def test_a_missing_weight_must_be_a_whole_number() -> None:
    text = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nspec:\n  rules:\n  - backendRefs:\n    - {name: a}\n"
    )
    with pytest.raises(EditError, match="not a non-negative integer"):
        apply_assignments(text, [Assignment(0, "/spec/rules/0/backendRefs/0/weight", "ten")], source="r.yaml")


def test_the_scan_table_says_which_weight_is_not_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "route.yaml").write_text(WEIGHTLESS.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["scan", str(tmp_path / "route.yaml")])
    assert info.value.code in (0, None)
    rows = [line for line in capsys.readouterr().out.splitlines() if "/weight" in line]
    assert len(rows) == 2
    assert "name=podinfo-ga,port=9898 unwritten (default)" in rows[0] and "unwritten" not in rows[1]
