"""A canary's promotion to a GA image policy with `digest: pin`: GA's image gets the canary's tag with the
digest and a Flux `:digest` field the digest, in the promotion itself; without a digest the promotion holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gitbot.config import Policy, load_policy
from gitbot.domain import Analysis
from gitbot.history import History
from gitbot.manifests import scan_text
from gitbot.planner import CanaryOutcome, PromotionPin, plan_canaries
from gitbot.rollout import Observation, read_route
from tests.unit.test_rollout import FILE, deployments, virtual_service

REPO = Path(__file__).resolve().parents[2]
APPS = "clusters/production/podinfo.yaml"
KUSTOMIZATION = "clusters/production/kustomization.yaml"
OLD = "sha256:" + "0a" * 32
NEW = "sha256:" + "1b" * 32


def pinned_policy(tmp_path: Path) -> Policy:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    text = text.replace("onComplete: hold", "onComplete: promote\n      promoteTo: podinfo-ga")
    text = text.replace('      filter: "0.1.*"\n', '      filter: "0.1.*"\n      digest: pin\n', 1)
    path = tmp_path / "production.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


def promote(tmp_path: Path, pins: dict[str, PromotionPin]) -> tuple[CanaryOutcome, dict[str, str]]:
    policy = pinned_policy(tmp_path)
    texts = {
        APPS: deployments("0.2.1").replace("podinfo:0.1.1", f"podinfo:0.1.1@{OLD}"),
        KUSTOMIZATION: (
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: podinfo\n"
            f'    digest: {OLD} # {{"$imagepolicy": "flux-system:podinfo-ga:digest"}}\n'
        ),
        FILE: virtual_service(("ga", "0"), ("canary", "100")),
    }
    targets = [t for file, text in texts.items() for t in scan_text(file, text)]
    now = datetime(2026, 1, 5, tzinfo=UTC)
    passed = Analysis("pass", (), now - timedelta(minutes=5), now, "all checks passed")
    seen = {"podinfo": Observation(passed, 100.0, now - timedelta(hours=1))}
    route = read_route(policy, 0, targets)
    (outcome,) = plan_canaries(policy, targets, texts, History("production"), {"podinfo": route}, seen, now, pins=pins)
    return outcome, dict(outcome.plan.files) if outcome.plan is not None else {}


def test_the_promotion_pins_ga_to_the_canary_tag_s_digest_in_the_same_change(tmp_path: Path) -> None:
    outcome, files = promote(tmp_path, {"podinfo": PromotionPin(NEW)})

    assert outcome.plan is not None and outcome.plan.action == "promote"
    assert f"image: ghcr.io/stefanprodan/podinfo:0.2.1@{NEW}\n" in files[APPS]
    assert f"    digest: {NEW} #" in files[KUSTOMIZATION]
    assert f"podinfo-ga is pinned to 0.2.1@{NEW}" in outcome.plan.body
    assert ("Gitbot-To", "0.2.1") in outcome.plan.trailers


def test_a_promotion_without_the_digest_holds_and_writes_nothing(tmp_path: Path) -> None:
    outcome, files = promote(tmp_path, {"podinfo": PromotionPin(None, "registry r: podinfo:0.2.1 not found (404)")})
    assert outcome.plan is None and files == {}
    assert outcome.held == (
        "promotion of 0.2.1 to podinfo-ga held: podinfo-ga pins digests and the digest of 0.2.1 cannot be had "
        "(registry r: podinfo:0.2.1 not found (404)); retried next cycle"
    )

    unasked, _files = promote(tmp_path, {})
    assert unasked.plan is None and unasked.held is not None and "its digest was not looked up" in unasked.held
