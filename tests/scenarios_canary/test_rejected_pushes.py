"""A push to the environment branch that loses a race in the real git server, in every path that pushes
there: the cycle's commits, a pull-request cycle's straight rollback, `gitbot rollback`, `gitbot promote`
and `gitbot pause`. Each fetches the person's commit, plans again on it and lands once, saying so in the
log; rejected on every attempt, each fails with the rejection and leaves the branch as it was."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from gitbot.cycle import Deps, run_cycle
from gitbot.delivery import Delivery
from gitbot.errors import PushRejectedError
from gitbot.manual import mark_paused, promote, rollback
from tests.scenarios_canary.conftest import POLICY, World, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import at, trailers
from tests.scenarios_canary.test_pull_requests import merge, open_pulls
from tests.support.github_fake import GitHubFake

README = "clusters/production/README.md"


def retried(attempt: int, of: int = 3) -> str:
    return f"push to main rejected; fetching and planning again ({attempt}/{of})"


def logging_deps(world: World) -> tuple[Deps, list[str]]:
    lines: list[str] = []
    return replace(world.deps, log=lines.append), lines


def race(world: World) -> str:
    """A person's commit that lands while the bot's next push to main is received; its sha."""
    return world.server.race_next_push(world.repo, {README: "podinfo\n"}, "Describe the production cluster")


def test_a_cycle_whose_commit_loses_a_race_plans_again_on_the_new_head(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    theirs = race(world)
    deps, lines = logging_deps(world)
    world.clock.set(minute(1))

    result = run_cycle(world.policy, deps, deliver=True)

    assert not world.server.race_pending(world.repo)
    assert result.attempts == 2 and lines == [retried(1)]
    log = world.log()
    assert [c.subject for c in log[:2]] == [
        f"gitbot({POLICY}): podinfo canary 0% -> 10%",
        "Describe the production cluster",
    ]
    assert log[1].sha == theirs and [d.ref for d in result.deliveries] == [log[0].sha]
    assert weights(world.routes_text()) == at(10)


def test_a_straight_rollback_of_a_pull_request_cycle_that_loses_a_race_is_retried(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("errors", github=github_fake)
    world.cycle(1)
    merge(world, open_pulls(world)[0])
    theirs = race(world)
    deps, lines = logging_deps(world)
    world.clock.set(minute(8))

    result = run_cycle(world.policy, deps, deliver=True)

    assert result.attempts == 2 and lines == [retried(1)]
    log = world.log()
    assert dict(trailers(log[0].body)).get("Gitbot-Action") == "rollback" and log[1].sha == theirs
    assert [d.outcome for d in result.deliveries] == ["committed"] and weights(world.routes_text()) == at(0)


def by_hand_rollback(world: World, deps: Deps) -> Delivery:
    return rollback(world.policy, deps, "podinfo")


def by_hand_promote(world: World, deps: Deps) -> Delivery:
    return promote(world.policy, deps, "podinfo")


def pause(world: World, deps: Deps) -> Delivery:
    return mark_paused(world.policy, deps, "podinfo", paused=True, why="looking into latency")


COMMANDS: dict[str, tuple[Callable[[World, Deps], Delivery], str, int]] = {
    "rollback": (by_hand_rollback, f"gitbot({POLICY}): roll back podinfo 10 -> 0", 0),
    "promote": (by_hand_promote, f"gitbot({POLICY}): podinfo canary 10% -> 60%", 60),
    "pause": (pause, f"gitbot({POLICY}): pause podinfo canary", 10),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_whose_push_loses_a_race_lands_once_on_the_new_head(make_world: WorldFactory, command: str) -> None:
    run, subject, weight = COMMANDS[command]
    world = make_world("healthy")
    world.cycle(1)
    world.clock.set(minute(5))
    theirs = race(world)
    deps, lines = logging_deps(world)

    done = run(world, deps)

    assert not world.server.race_pending(world.repo)
    assert lines == [retried(1)]
    log = world.log()
    assert (done.outcome, done.ref) == ("committed", log[0].sha)
    assert log[0].subject == subject and log[1].sha == theirs
    assert [c.subject for c in log].count(subject) == 1
    assert weights(world.routes_text()) == at(weight)
    assert world.server.read_file(world.repo, README) == "podinfo\n"


@pytest.mark.parametrize("command", ["cycle", *COMMANDS])
def test_a_push_rejected_on_every_attempt_fails_with_the_rejection_and_changes_nothing(
    make_world: WorldFactory, command: str
) -> None:
    world = make_world("healthy")
    world.cycle(1)
    world.clock.set(minute(14))
    head = world.log()[0].sha
    deps, lines = logging_deps(world)

    with world.server.holding_ref_lock(world.repo), pytest.raises(PushRejectedError, match="failed to update ref"):
        if command == "cycle":
            run_cycle(world.policy, deps, deliver=True)
        else:
            COMMANDS[command][0](world, deps)

    assert lines == [retried(1), retried(2)]
    assert world.log()[0].sha == head and weights(world.routes_text()) == at(10)
