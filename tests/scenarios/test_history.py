"""History read back from git: a person's revert quarantines the reverted tag, `status` says so and why,
a newer matching tag is applied; `gitbot rollback` reverts with trailers and quarantines."""

from __future__ import annotations

import pytest

from gitbot.errors import UsageError
from gitbot.reconcile import rollback, run_cycle, status
from tests.scenarios.conftest import POLICY, WorldFactory, person_reverts

pytestmark = pytest.mark.real


def test_persons_revert_quarantines_the_tag_and_a_newer_tag_is_applied(make_world: WorldFactory) -> None:
    world = make_world(image_repo="history/revert")
    run_cycle(world.policy(), world.deps(), deliver=True)
    ga_commit = world.git.log(world.repo)[1]
    assert ga_commit.subject == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2"

    revert = person_reverts(world, ga_commit.sha)
    assert world.workloads() == world.expected_workloads(ga="0.1.0", canary="0.2.1")

    again = run_cycle(world.policy(), world.deps(), deliver=True)
    # Neither the reverted tag nor an older one behind it is pushed over the person's decision.
    assert again.deliveries == ()
    assert world.git.head(world.repo) == revert

    report = status(world.policy(), world.deps())
    ga = next(i for i in report.images if i.name == "podinfo-ga")
    assert ga.current == ("0.1.0",)
    assert ga.newest is None and ga.candidates[:2] == ("0.1.1", "0.1.0")
    assert [tag for tag, _ in ga.quarantined] == ["0.1.2"]
    reason = ga.quarantined[0][1]
    assert f"reverted by {revert[:7]} (Other Person)" in reason and ga_commit.subject in reason

    world.push_tags("0.1.3")
    newer = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.subject for d in newer.deliveries] == [f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.3"]
    assert world.workloads() == world.expected_workloads(ga="0.1.3", canary="0.2.1")
    assert "Skipped as quarantined" in world.git.message(world.repo) and "0.1.2" in world.git.message(world.repo)


def test_rollback_command_reverts_with_trailers_and_quarantines(make_world: WorldFactory) -> None:
    world = make_world(image_repo="history/rollback")
    run_cycle(world.policy(), world.deps(), deliver=True)
    ga_commit = world.git.log(world.repo)[1]

    delivery = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert delivery.outcome == "committed"
    head = world.git.log(world.repo)[0]
    assert head.sha == delivery.ref
    assert head.subject == f"gitbot({POLICY}): roll back podinfo-ga 0.1.2 -> 0.1.0"
    message = world.git.message(world.repo)
    assert f"This reverts commit {ga_commit.sha}." in message
    for trailer in (
        f"Gitbot-Policy: {POLICY}",
        "Gitbot-Action: rollback",
        "Gitbot-Target: podinfo-ga",
        "Gitbot-From: 0.1.2",
        "Gitbot-To: 0.1.0",
        "Gitbot-Quarantine: podinfo-ga=0.1.2",
    ):
        assert trailer in message.splitlines()
    assert world.workloads() == world.expected_workloads(ga="0.1.0", canary="0.2.1")

    assert run_cycle(world.policy(), world.deps(), deliver=True).deliveries == ()
    report = status(world.policy(), world.deps())
    ga = next(i for i in report.images if i.name == "podinfo-ga")
    assert [tag for tag, _ in ga.quarantined] == ["0.1.2"]


def test_second_rollback_does_not_undo_the_first(make_world: WorldFactory) -> None:
    world = make_world(image_repo="history/rollback-twice")
    run_cycle(world.policy(), world.deps(), deliver=True)
    first = rollback(world.policy(), world.deps(), "podinfo-ga")

    with pytest.raises(UsageError) as caught:
        rollback(world.policy(), world.deps(), "podinfo-ga")

    assert "no standing gitbot change for 'podinfo-ga'" in caught.value.one_line()
    assert world.git.head(world.repo) == first.ref
    assert world.workloads() == world.expected_workloads(ga="0.1.0", canary="0.2.1")
