"""The demo's seed is the world of Istio's podinfo canary guide, so what its reader knows is what the demo shows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gitbot.demo.sandbox import ROUTE, VIRTUAL_SERVICE_FILE, seed_files
from gitbot.manifests import scan_text
from tests.crd_schemas import validator_for


def documents() -> dict[tuple[str, str], Any]:
    """(kind, name) -> document, over every seed file."""
    found = {}
    for text in seed_files().values():
        for doc in YAML(typ="safe", pure=True).load_all(text):
            if isinstance(doc, dict):
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def test_the_virtual_service_is_the_guides() -> None:
    service = documents()[("VirtualService", "podinfo")]
    assert service["apiVersion"] == "networking.istio.io/v1alpha3"
    assert service["metadata"]["namespace"] == "test" and ROUTE == "VirtualService/test/podinfo"
    assert service["spec"]["hosts"] == ["podinfo", "podinfo.co.uk"]
    assert service["spec"]["gateways"] == ["mesh", "podinfo-gateway"]
    routes = service["spec"]["http"][0]["route"]
    assert [(r["destination"], r["weight"]) for r in routes] == [
        ({"host": "podinfo", "subset": "ga"}, 100),
        ({"host": "podinfo", "subset": "canary"}, 0),
    ]
    validator = validator_for(service)
    assert validator is not None
    validator.validate(service)
    weights = {t.destination: t.value for t in scan_text(VIRTUAL_SERVICE_FILE, seed_files()[VIRTUAL_SERVICE_FILE])}
    assert weights["host=podinfo,subset=canary"] == "0"


def test_the_subsets_select_the_ga_and_canary_deployments_and_the_gateway_serves_the_public_host() -> None:
    docs = documents()
    rule = docs[("DestinationRule", "podinfo")]
    assert rule["apiVersion"] == "networking.istio.io/v1alpha3" and rule["spec"]["host"] == "podinfo"
    subsets = {s["name"]: s["labels"] for s in rule["spec"]["subsets"]}
    assert subsets == {"ga": {"version": "ga"}, "canary": {"version": "canary"}}
    for name, labels in subsets.items():
        pod = docs[("Deployment", f"podinfo-{name}")]["spec"]["template"]["metadata"]["labels"]
        assert labels.items() <= pod.items() and pod["app"] == "podinfo"
    gateway = docs[("Gateway", "podinfo-gateway")]
    assert gateway["apiVersion"] == "networking.istio.io/v1alpha3"
    assert gateway["metadata"]["namespace"] == "test"
    assert gateway["spec"]["servers"][0]["hosts"] == ["podinfo.co.uk"]
    service = docs[("Service", "podinfo")]
    assert service["spec"]["selector"] == {"app": "podinfo"}


def test_the_readme_shows_the_demos_virtual_service() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    shown = next(
        doc
        for block in blocks
        for doc in YAML(typ="safe", pure=True).load_all(block)
        if isinstance(doc, dict) and doc.get("kind") == "VirtualService"
    )
    seeded = documents()[("VirtualService", "podinfo")]
    assert shown["apiVersion"] == seeded["apiVersion"] and shown["metadata"] == seeded["metadata"]
    assert shown["spec"] == seeded["spec"]
