"""What stops a canary: no canary traffic, an unreachable Prometheus, a person's revert, a route another
controller owns; and a rollback whose revert conflicts with a person's later edit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gitbot.errors import ConfigError
from tests.scenarios_canary.conftest import (
    CANARY_TAG,
    POLICY,
    PROGRESS,
    ROUTES_FILE,
    WorldFactory,
    weights,
)
from tests.scenarios_canary.test_progression import action, at, trailers
from tests.support.gitserver import OTHER_NAME
from tests.support.prometheus import Scenario, start_prometheus


def test_no_canary_traffic_is_inconclusive_and_holds(make_world: WorldFactory) -> None:
    world = make_world("nocanary")
    world.cycle(1)
    step10 = world.log()[0].sha
    assert weights(world.routes_text()) == at(10)

    for minute, since, expected in ((8, 7, "wait-for-traffic"), (12, 11, "wait-for-traffic"), (20, 19, "not-applied")):
        result = world.cycle(minute)
        assert result.deliveries == ()
        (outcome,) = result.canaries
        decision = outcome.decision
        assert decision is not None
        assert decision.action == expected
        # Each cycle's analysis was inconclusive (no canary requests), counted from the step in git.
        assert decision.inconclusive_for == timedelta(minutes=since)
    # 19 minutes after the step the traffic still does not show it: reported, with how long it was inconclusive.
    assert decision is not None and decision.notify
    assert decision.reason == (
        "observed canary share 0.0%, committed 10% after 19m: step not applied; "
        "analysis inconclusive for 19m since the step"
    )
    assert world.log()[0].sha == step10
    assert weights(world.routes_text()) == at(10)


def test_stopped_prometheus_holds_without_promotion_or_rollback(make_world: WorldFactory, tmp_path: Path) -> None:
    own = start_prometheus(
        tmp_path / "prometheus",
        Scenario(namespace="stopped", duration=timedelta(minutes=20), canary_share=PROGRESS),
    )
    try:
        world = make_world("stopped", prometheus_url=own.url)
        world.cycle(1)
        step10 = world.log()[0].sha
        # With Prometheus up the canary would step at minute 14 ...
        planned = world.plan(14)
        assert [p.subject for p in planned.plans] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    finally:
        own.stop()
    # ... with it stopped nothing can be confirmed: no step, no rollback, no commit.
    for minute in (14, 16):
        result = world.cycle(minute)
        assert result.deliveries == () and result.plans == ()
        assert action(result) == "wait-for-traffic"
    assert result.canaries[0].decision is not None
    assert result.canaries[0].decision.inconclusive_for == timedelta(minutes=15)
    assert world.log()[0].sha == step10
    assert weights(world.routes_text()) == at(10)


def test_a_persons_revert_of_a_step_pauses_the_canary(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    world.cycle(1)
    step10 = world.log()[0].sha
    world.cycle(14)
    step60 = world.log()[0]
    world.revert_as_person(step60, step10)
    reverted = world.log()[0].sha
    assert weights(world.routes_text()) == at(10)

    # At 27 a healthy canary steps (test_progression); reverted by a person, it holds.
    for minute in (27, 40):
        result = world.cycle(minute)
        assert action(result) == "hold" and result.deliveries == ()
        assert result.canaries[0].decision is not None
        assert result.canaries[0].decision.reason == f"paused: a person ({OTHER_NAME}) reverted step {step60.sha[:7]}"
    assert world.log()[0].sha == reverted


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ("  annotations:\n    kustomize.toolkit.fluxcd.io/reconcile: disabled\n", "reconcile-disabled"),
        ("  labels:\n    app.kubernetes.io/managed-by: flagger\n", "flagger"),
    ],
    ids=["flux-reconcile-disabled", "flagger-label"],
)
def test_a_route_another_controller_owns_is_refused(make_world: WorldFactory, metadata: str, reason: str) -> None:
    world = make_world("healthy", route_metadata=metadata)
    head = world.log()[0].sha
    with pytest.raises(ConfigError) as caught:
        world.cycle(1)
    # One line: the policy's field, the route's file and line, and why.
    assert str(caught.value) == (
        f"{world.policy.source}:28: spec.canaries[0].route: canary podinfo: VirtualService/test/podinfo "
        f"({ROUTES_FILE}:31) is managed by another controller ({reason}); "
        "gitbot will not move its weights"
    )
    assert world.log()[0].sha == head


def test_a_conflicting_revert_falls_back_to_a_plain_commit(make_world: WorldFactory) -> None:
    world = make_world("slow")
    world.cycle(1)
    step10 = world.log()[0].sha
    world.cycle(14)
    step60 = world.log()[0].sha
    # A person moves the canary to 50 % by hand on both routes, on the very lines the bot's steps changed.
    edited = world.routes_text().replace("weight: 40", "weight: 50").replace("weight: 60", "weight: 50")
    person = world.server.commit_as_other(world.repo, {ROUTES_FILE: edited}, "Hold podinfo at 50/50")
    assert weights(world.routes_text()) == at(50)

    with world.git_trace() as trace:
        failed = world.cycle(24)
    assert action(failed) == "rollback"
    commands = trace.read_text(encoding="utf-8")
    # Tried as a revert, which conflicted and was abandoned.
    assert f"revert --no-commit --no-edit {step60} {step10}" in commands and "revert --abort" in commands
    (delivery,) = failed.deliveries
    assert delivery.subject == f"gitbot({POLICY}): roll back podinfo canary (p99 2.14x GA)"
    # The revert conflicted, so the bot committed the weights back itself, on top of the person's commit.
    parents = world.server.git(world.repo, "log", "-1", "--format=%P", "main").split()
    assert parents == [person]
    assert weights(world.routes_text()) == at(0)
    message = world.server.message(world.repo)
    assert ("Gitbot-From", "50") in trailers(message) and ("Gitbot-To", "0") in trailers(message)
    assert ("Gitbot-Quarantine", f"podinfo-canary={CANARY_TAG}") in trailers(message)
    # The message says the commit set the weights itself, without claiming a revert; its trailers name the
    # steps it undoes for history.
    assert message.startswith(
        f"{delivery.subject}\n\nA revert of the canary's 2 steps ({step60[:7]} and {step10[:7]}) would conflict "
        "with later changes to the branch, so this commit sets the canary weight from 50% to 0% (GA 100%) itself, "
        "without `git revert`. The Gitbot-Undoes trailers name the steps it undoes.\n\nDecision: "
    )
    assert "This reverts commit" not in message
    assert [value for key, value in trailers(message) if key == "Gitbot-Undoes"] == [step60, step10]
    # Only the weights moved: the comment on the web route's GA weight survives the fallback edit.
    assert "weight: 100  # GA" in world.routes_text()

    after = world.cycle(30)
    assert action(after) == "hold" and after.deliveries == ()
    assert after.canaries[0].decision is not None
    assert "waiting for a newer canary tag" in after.canaries[0].decision.reason
    assert world.validate_every_version() == 5
