"""A canary step says which canary image its evidence measured, in its commit message and pull request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.canary import CanaryDecision
from gitbot.config import Policy, load_policy
from gitbot.delivery import pull_request_text
from gitbot.domain import Analysis, CheckResult, Plan
from gitbot.history import History
from gitbot.manifests import scan_text
from gitbot.planner import plan_canaries
from gitbot.rollout import Observation, read_route, step_plan

REPO = Path(__file__).resolve().parents[2]
APPS = "clusters/production/podinfo.yaml"
ROUTES = "clusters/production/routing.yaml"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
HEADER = "| Check | Canary | GA | Threshold | Verdict | Window |"


@pytest.fixture(scope="module")
def production() -> Policy:
    return load_policy(REPO / "policies" / "production.yaml")


def texts(canary_tag: str) -> dict[str, str]:
    apps = "---\n".join(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: test}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n"
        f"          image: ghcr.io/stefanprodan/podinfo:{tag}\n"
        for name, tag in (("podinfo-ga", "0.1.1"), ("podinfo-canary", canary_tag))
    )
    routes = (
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n"
        "metadata: {name: podinfo, namespace: test}\nspec:\n  http:\n    - route:\n"
        "        - destination: {host: podinfo, subset: ga}\n          weight: 90\n"
        "        - destination: {host: podinfo, subset: canary}\n          weight: 10\n"
    )
    return {APPS: apps, ROUTES: routes}


def step(policy: Policy, canary_tag: str, observation: Observation) -> Plan:
    files = texts(canary_tag)
    targets = [t for file, text in files.items() for t in scan_text(file, text)]
    route = read_route(policy, 0, targets)
    (outcome,) = plan_canaries(
        policy, targets, files, History("production"), {"podinfo": route}, {"podinfo": observation}, NOW
    )
    assert outcome.plan is not None and outcome.plan.action == "canary-step", outcome
    return outcome.plan


def passed() -> Observation:
    check = CheckResult("success-rate", "pass", 100.0, 100.0, ">= 99%")
    analysis = Analysis("pass", (check,), NOW - timedelta(minutes=5), NOW, "all checks passed")
    return Observation(analysis, 10.0, None)


@pytest.mark.parametrize("tag", ["0.2.1", "0.2.2"])
def test_a_step_names_the_canary_image_its_evidence_measured(production: Policy, tag: str) -> None:
    plan = step(production, tag, passed())
    line = f"Evidence measured on canary image ghcr.io/stefanprodan/podinfo:{tag}:"
    # The line heads the evidence table, in the commit message and in the pull request's evidence.
    assert f"{line}\n\n{HEADER}" in plan.body
    assert f"### Evidence\n\nDecision: analysis passed at 10%: step to 60%.\n\n{line}\n\n{HEADER}" in (
        pull_request_text(production, plan)
    )


def test_a_step_without_an_analysis_names_no_image(production: Policy) -> None:
    # A step by hand measured nothing: no evidence table, so no image it was measured on.
    files = texts("0.2.1")
    route = read_route(production, 0, [t for file, text in files.items() for t in scan_text(file, text)])
    decision = CanaryDecision("step", 10, 60, "stepped by hand")
    plan = step_plan(production, route, decision, Observation(None, None, None), files, to=60, canary_tag="0.2.1")
    assert "measured on" not in plan.body
    assert "measured on canary image" in step(production, "0.2.1", passed()).body
