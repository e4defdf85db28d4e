"""Image plans: `group: all` makes one change named `images` whose texts point at commands that work, and a
cycle's bindings parse each distinct image reference once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitbot import planner
from gitbot.config import load_policy
from gitbot.delivery import bot_branch, pull_request_text
from gitbot.history import History
from gitbot.imageref import ImageRef, parse_image
from gitbot.manifests import scan_text
from gitbot.planner import bind_images, held_downgrades, plan_images

REPO = Path(__file__).resolve().parents[2]
APPS = "clusters/production/podinfo.yaml"
TAGS = ("0.1.1", "0.1.2", "0.2.0", "0.2.1")


def deployments() -> str:
    return "---\n".join(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: test}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n"
        f"          image: ghcr.io/stefanprodan/podinfo:{tag}\n"
        for name, tag in (("podinfo-ga", "0.1.1"), ("podinfo-canary", "0.2.0"))
    )


def test_group_all_in_pull_request_mode_is_one_change_whose_rollback_names_an_image(tmp_path: Path) -> None:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8").replace("group: per-image", "group: all")
    path = tmp_path / "production.yaml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    texts = {APPS: deployments()}
    targets = scan_text(APPS, texts[APPS])
    tags = {image.name: TAGS for image in policy.spec.images}
    plans = plan_images(policy, targets, texts, tags, History("production"), chain=False)
    assert [(p.name, bot_branch(policy, p.name)) for p in plans] == [("images", "gitbot/production/images")]
    assert [c.new.rsplit(":", 1)[1] for c in plans[0].changes] == ["0.1.2", "0.2.1"]
    body = pull_request_text(policy, plans[0])
    assert (
        "`gitbot rollback podinfo-ga --policy production` (it reverts the whole change: podinfo-ga, podinfo-canary)"
        in body
    )
    assert "rollback images" not in body


def test_a_cycle_s_bindings_parse_each_distinct_image_reference_once(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(REPO / "policies" / "production.yaml")
    # A second workload runs podinfo-ga's very reference, bound to it by a Flux marker.
    marked = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo-worker, namespace: test}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: worker\n"
        '          image: ghcr.io/stefanprodan/podinfo:0.1.1 # {"$imagepolicy": "test:podinfo-ga"}\n'
    )
    texts = {APPS: deployments() + "---\n" + marked}
    targets = scan_text(APPS, texts[APPS])
    tags = {image.name: TAGS for image in policy.spec.images}
    unbound = plan_images(policy, targets, texts, tags, History("production"), chain=True)
    parsed: list[str] = []

    def counting(ref: str, *, where: str | None = None) -> ImageRef:
        parsed.append(ref)
        return parse_image(ref, where=where)

    monkeypatch.setattr(planner, "parse_image", counting)
    bindings = bind_images(policy, targets)
    plans = plan_images(policy, targets, texts, tags, History("production"), chain=True, bindings=bindings)
    held_downgrades(policy, targets, tags, History("production"), bindings=bindings)
    assert plans == unbound
    assert [len(b.targets) for b in bindings] == [2, 1]
    assert sorted(parsed) == ["ghcr.io/stefanprodan/podinfo:0.1.1", "ghcr.io/stefanprodan/podinfo:0.2.0"]
