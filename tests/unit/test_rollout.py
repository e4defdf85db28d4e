"""Reading a canary's route from the scanned manifests and moving its weights: only stable and canary move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.analysis import judge, render_evidence
from gitbot.canary import CanaryDecision
from gitbot.config import Policy, load_policy
from gitbot.domain import Analysis
from gitbot.errors import ConfigError, ManifestError
from gitbot.history import History
from gitbot.manifests import scan_text
from gitbot.messages import render_message
from gitbot.planner import plan_canaries
from gitbot.rollout import (
    CanaryHistory,
    Observation,
    analysis_spec,
    evidence_text,
    read_route,
    rollback_commit_message,
    rollback_plan,
    settle_rollback,
    step_plan,
)

REPO = Path(__file__).resolve().parents[2]
FILE = "clusters/production/routing.yaml"


@pytest.fixture(scope="module")
def production() -> Policy:
    return load_policy(REPO / "policies" / "production.yaml")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    text = text.replace("VirtualService/test/podinfo", "HTTPRoute/test/podinfo")
    text = text.replace("stable: {subset: ga}", "stable: {backendRef: podinfo-ga}")
    text = text.replace("canary: {subset: canary}", "canary: {backendRef: podinfo-canary}")
    path = tmp_path_factory.mktemp("policies") / "production.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


def virtual_service(*weights: tuple[str, str]) -> str:
    routes = "".join(
        f"        - destination: {{host: podinfo, subset: {subset}}}\n          weight: {weight}\n"
        for subset, weight in weights
    )
    return (
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n"
        "metadata: {name: podinfo, namespace: test}\nspec:\n  http:\n    - route:\n" + routes
    )


def http_route(*weights: tuple[str, str]) -> str:
    refs = "".join(f"        - {{name: {name}, port: 9898, weight: {weight}}}\n" for name, weight in weights)
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: podinfo, namespace: test}\nspec:\n  rules:\n    - backendRefs:\n" + refs
    )


def step(policy: Policy, text: str, to: int) -> dict[str, str]:
    """The weights after stepping the canary to `to`, by destination as the manifest writes it."""
    route = read_route(policy, 0, scan_text(FILE, text))
    decision = CanaryDecision("step", route.weight, to, "test")
    plan = step_plan(policy, route, decision, Observation(None, None, None), {FILE: text}, to=to)
    after = scan_text(FILE, dict(plan.files)[FILE])
    return {str(t.destination): t.value for t in after if t.kind == "weight"}


def test_only_stable_and_canary_move_and_the_sum_is_kept(production: Policy, gateway: Policy) -> None:
    text = virtual_service(("ga", "90"), ("canary", "10"), ("mirror", "0"))
    assert step(production, text, 60) == {
        "host=podinfo,subset=ga": "40",
        "host=podinfo,subset=canary": "60",
        "host=podinfo,subset=mirror": "0",
    }
    text = http_route(("podinfo-ga", "90"), ("podinfo-canary", "10"), ("podinfo-legacy", "0"))
    moved = step(gateway, text, 100)
    assert [moved[f"name=podinfo-{n},port=9898"] for n in ("ga", "canary", "legacy")] == ["0", "100", "0"]


@pytest.mark.parametrize("kind", ["VirtualService", "HTTPRoute"])
def test_a_route_that_also_sends_traffic_elsewhere_is_refused(production: Policy, gateway: Policy, kind: str) -> None:
    if kind == "VirtualService":
        policy, text, line = production, virtual_service(("ga", "50"), ("canary", "0"), ("legacy", "50")), 12
    else:
        policy, text = gateway, http_route(("podinfo-ga", "50"), ("podinfo-canary", "0"), ("podinfo-legacy", "50"))
        line = 9
    with pytest.raises(ConfigError) as info:
        read_route(policy, 0, scan_text(FILE, text))
    message = info.value.one_line()
    assert "spec.canaries[0].route" in message
    assert "also sends 50% to" in message and f"({FILE}:{line})" in message


@pytest.mark.parametrize(("ga", "canary"), [("90", "20"), ("1", "0")])
def test_stable_and_canary_must_carry_the_whole_route(production: Policy, ga: str, canary: str) -> None:
    with pytest.raises(ConfigError, match=rf"add up to {int(ga) + int(canary)}, not 100"):
        read_route(production, 0, scan_text(FILE, virtual_service(("ga", ga), ("canary", canary))))


@pytest.mark.parametrize("weight", ["ten", "10.5", "150", "-5"])
def test_a_weight_that_is_not_a_percent_is_a_one_line_manifest_error(production: Policy, weight: str) -> None:
    with pytest.raises(ManifestError) as info:
        read_route(production, 0, scan_text(FILE, virtual_service(("ga", "90"), ("canary", weight))))
    assert info.value.one_line().startswith(f"{FILE}:10: weight ")
    assert "whole percent 0..100" in info.value.one_line()


def deployments(canary_tag: str) -> str:
    return "---\n".join(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: test}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n"
        f"          image: ghcr.io/stefanprodan/podinfo:{tag}\n"
        for name, tag in (("podinfo-ga", "0.1.1"), ("podinfo-canary", canary_tag))
    )


def first_step_id(policy: Policy, canary_tag: str) -> str:
    apps, routes = "clusters/production/podinfo.yaml", virtual_service(("ga", "100"), ("canary", "0"))
    texts = {apps: deployments(canary_tag), FILE: routes}
    targets = [t for file, text in texts.items() for t in scan_text(file, text)]
    route = read_route(policy, 0, targets)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    outcomes = plan_canaries(policy, targets, texts, History("production"), {"podinfo": route}, {}, now)
    plan = outcomes[0].plan
    assert plan is not None and plan.action == "canary-step"
    return plan.plan_id


def test_a_step_for_another_canary_tag_is_another_plan(production: Policy) -> None:
    # Same repository state, same id (a restarted bot finds its pull request); a new canary image makes the
    # same weight move a different change, so a closed pull request for the old tag does not hold it back.
    assert first_step_id(production, "0.2.1") == first_step_id(production, "0.2.1")
    assert first_step_id(production, "0.2.1") != first_step_id(production, "0.2.2")


def test_a_route_without_namespace_in_its_manifest_is_found(tmp_path: Path) -> None:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    text = text.replace("VirtualService/test/podinfo", "VirtualService//podinfo")
    text = text.replace("window: 5m", "window: 5m\n        namespace: test")
    path = tmp_path / "production.yaml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    manifest = virtual_service(("ga", "90"), ("canary", "10")).replace(", namespace: test}", "}")
    route = read_route(policy, 0, scan_text(FILE, manifest))
    assert (route.weight, analysis_spec(route).namespace) == (10, "test")


def test_a_canary_without_a_tag_is_not_promoted_as_an_empty_tag(tmp_path: Path) -> None:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    text = text.replace("onComplete: hold", "onComplete: promote\n      promoteTo: podinfo-ga")
    path = tmp_path / "production.yaml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    apps = "clusters/production/podinfo.yaml"
    digest = "sha256:" + "ab" * 32
    texts = {
        apps: deployments("0.2.1").replace(":0.2.1", f"@{digest}"),
        FILE: virtual_service(("ga", "0"), ("canary", "100")),
    }
    targets = [t for file, text in texts.items() for t in scan_text(file, text)]
    now = datetime(2026, 1, 5, tzinfo=UTC)
    passed = Analysis("pass", (), now - timedelta(minutes=5), now, "all checks passed")
    seen = {"podinfo": Observation(passed, 100.0, now - timedelta(hours=1))}
    route = read_route(policy, 0, targets)
    (outcome,) = plan_canaries(policy, targets, texts, History("production"), {"podinfo": route}, seen, now)
    assert outcome.plan is None
    assert "no tag" in outcome.note


def test_a_custom_check_is_named_by_its_label_in_the_evidence(tmp_path: Path) -> None:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    custom = '          - {name: custom, label: error budget, query: "sum(x{ns=\\"{namespace}\\"})", max: 0.5}\n'
    text = text.replace("          - {name: latency-p99, maxRatio: 1.2, max: 500}\n", custom)
    path = tmp_path / "production.yaml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    route = read_route(policy, 0, scan_text(FILE, virtual_service(("ga", "90"), ("canary", "10"))))
    spec = analysis_spec(route)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    samples = {"requests:canary": 500.0, "requests:stable": 5000.0, "0:success-rate:canary": 100.0}
    samples |= {"0:success-rate:stable": 100.0, "1:custom:canary": 0.9}
    result = judge(spec, samples, now)
    assert [(c.name, c.verdict) for c in result.checks][-1] == ("error budget", "fail")
    assert "| error budget | 0.9 |" in render_evidence(result)


def test_a_label_on_a_built_in_check_is_refused(tmp_path: Path) -> None:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    text = text.replace("maxRatio: 1.2, max: 500}", "maxRatio: 1.2, label: p99}")
    path = tmp_path / "production.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"checks\[1\]: latency-p99 is built in and takes no label"):
        load_policy(path)


def test_a_rollback_settles_what_its_revert_restores_at_0(production: Policy) -> None:
    before = virtual_service(("ga", "40"), ("canary", "60"))
    route = read_route(production, 0, scan_text(FILE, before))
    hist = CanaryHistory(None, ("a" * 40,), False, False, None, False, "")
    decision = CanaryDecision("rollback", 60, 0, "analysis failed at 60%: roll back to 0%")
    plan = rollback_plan(production, route, hist, decision, Observation(None, None, None), {FILE: before}, None)

    # The revert restored a weight a person had set before the bot's step: the same commit sets it to 0.
    restored = virtual_service(("ga", "90"), ("canary", "10"))
    files, message = settle_rollback(plan, read_route(production, 0, scan_text(FILE, restored)), {FILE: restored})
    assert files == {FILE: virtual_service(("ga", "100"), ("canary", "0"))}
    assert message.startswith(
        f"{plan.subject}\n\nThis reverts commit {'a' * 40}.\n\n"
        "Reverting these steps restores the canary weight from before them, 10%; "
        "this commit then sets it from 10% to 0% (GA 100%).\n\nDecision: analysis failed at 60%"
    )
    assert "Gitbot-From: 60\nGitbot-To: 0\n" in message

    # A revert that restores 0 needs nothing more and keeps the plan's message.
    zero = virtual_service(("ga", "100"), ("canary", "0"))
    files, message = settle_rollback(plan, read_route(production, 0, scan_text(FILE, zero)), {FILE: zero})
    assert files == {} and message == render_message(plan.subject, plan.body, plan.trailers)

    # Nothing is reverted when the revert conflicts: the message says so and names the step in a trailer.
    fallback = rollback_commit_message(plan)
    assert fallback.startswith(
        f"{plan.subject}\n\nA revert of the canary's step aaaaaaa would conflict with later changes to the branch, "
        "so this commit sets the canary weight from 60% to 0% (GA 100%) itself, without `git revert`. The "
        "Gitbot-Undoes trailers name the step it undoes.\n\nDecision: analysis failed at 60%"
    )
    assert "This reverts commit" not in fallback
    assert f"Gitbot-To: 0\nGitbot-Undoes: {'a' * 40}\nGitbot-Plan-Id: {plan.plan_id}\n" in fallback


@pytest.mark.parametrize("share", [float("nan"), float("inf"), float("-inf")])
def test_evidence_leaves_out_a_share_that_is_not_a_number(share: float) -> None:
    decision = CanaryDecision("hold", 10, None, "canary share not observable yet (committed 10%)")
    text = evidence_text(decision, Observation(None, share, None))
    assert text == "Decision: canary share not observable yet (committed 10%)."
