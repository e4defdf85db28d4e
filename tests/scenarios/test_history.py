"""History read back from git: a person's revert quarantines the reverted tag, `status` says so and why,
a newer matching tag is applied; `gitbot rollback` reverts with trailers and quarantines."""

from __future__ import annotations

import pytest

from gitbot.cycle import run_cycle
from gitbot.manual import rollback, status
from tests.scenarios.conftest import POLICY, World, WorldFactory, person_reverts
from tests.support.killed import Killed, killed_after_push

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

    again = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert (again.outcome, again.ref) == ("unchanged", first.ref)
    assert again.subject == f"already rolled back by {first.ref[:7]}: {first.subject}"
    assert world.git.head(world.repo) == first.ref
    assert world.workloads() == world.expected_workloads(ga="0.1.0", canary="0.2.1")


def two_ga_changes(make_world: WorldFactory, image_repo: str) -> tuple[World, str]:
    """GA 0.1.0 -> 0.1.1, then 0.1.1 -> 0.1.2 when 0.1.2 is pushed; returns the older change's sha."""
    world = make_world(image_repo=image_repo, tags=("0.1.0", "0.1.1", "0.2.0", "0.2.1"))
    run_cycle(world.policy(), world.deps(), deliver=True)
    older = next(c for c in world.git.log(world.repo) if c.subject.endswith("podinfo-ga 0.1.0 -> 0.1.1"))
    world.push_tags("0.1.2")
    run_cycle(world.policy(), world.deps(), deliver=True)
    assert world.workloads() == world.expected_workloads(ga="0.1.2", canary="0.2.1")
    return world, older.sha


def rollbacks(world: World) -> list[str]:
    return [c.sha for c in world.git.log(world.repo) if "Gitbot-Action: rollback" in c.body.splitlines()]


def quarantined(world: World) -> list[str]:
    ga = next(i for i in status(world.policy(), world.deps()).images if i.name == "podinfo-ga")
    return [tag for tag, _ in ga.quarantined]


def test_rollback_killed_after_its_push_landed_and_run_again_leaves_the_older_change(
    make_world: WorldFactory,
) -> None:
    world, older = two_ga_changes(make_world, "history/rollback-killed")

    with pytest.raises(Killed):
        rollback(world.policy(), killed_after_push(world.deps()), "podinfo-ga")
    (landed,) = rollbacks(world)
    assert world.git.head(world.repo) == landed

    again = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert (again.outcome, again.ref) == ("unchanged", landed)
    subject = f"gitbot({POLICY}): roll back podinfo-ga 0.1.2 -> 0.1.1"
    assert again.subject == f"already rolled back by {landed[:7]}: {subject}"
    assert rollbacks(world) == [landed] and world.git.head(world.repo) == landed
    assert world.workloads() == world.expected_workloads(ga="0.1.1", canary="0.2.1")
    assert older in [c.sha for c in world.git.log(world.repo)]
    assert quarantined(world) == ["0.1.2"]


def test_rollback_further_reverts_the_next_older_change_on_purpose(make_world: WorldFactory) -> None:
    world, older = two_ga_changes(make_world, "history/rollback-further")
    first = rollback(world.policy(), world.deps(), "podinfo-ga")

    further = rollback(world.policy(), world.deps(), "podinfo-ga", further=True)

    assert further.outcome == "committed"
    assert further.subject == f"gitbot({POLICY}): roll back podinfo-ga 0.1.1 -> 0.1.0"
    assert f"This reverts commit {older}." in world.git.message(world.repo)
    assert rollbacks(world) == [further.ref, first.ref]
    assert world.workloads() == world.expected_workloads(ga="0.1.0", canary="0.2.1")
    assert quarantined(world) == ["0.1.1", "0.1.2"]
    # And the further rollback is now the one a repeat finds.
    again = rollback(world.policy(), world.deps(), "podinfo-ga")
    assert (again.outcome, again.ref) == ("unchanged", further.ref)


def test_rollback_after_a_persons_revert_of_the_newest_change_names_that_revert(make_world: WorldFactory) -> None:
    world, _older = two_ga_changes(make_world, "history/rollback-person")
    newest = world.git.log(world.repo)[0]
    revert = person_reverts(world, newest.sha)

    again = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert (again.outcome, again.ref) == ("unchanged", revert)
    assert again.subject.startswith(f"already rolled back by {revert[:7]}: Revert ")
    assert world.git.head(world.repo) == revert
    assert world.workloads() == world.expected_workloads(ga="0.1.1", canary="0.2.1")
