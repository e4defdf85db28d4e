"""Whole cycles whose push loses a race inside the real git server (`[remote rejected] (failed to update ref)`):
the cycle fetches, plans again and delivers each change exactly once, never forcing the environment branch;
`gitbot once` says so in its own words, without git's stray lines on stderr."""

from __future__ import annotations

import pytest

from gitbot.cycle import run_cycle
from gitbot.errors import PushRejectedError
from tests.scenarios.conftest import POLICY, WORKLOADS, World
from tests.scenarios.test_cli import gitbot

pytestmark = pytest.mark.real

GA = f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2"
CANARY = f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1"


def test_a_push_that_loses_a_race_in_the_server_is_planned_again_and_delivered_once(world: World) -> None:
    person_text = world.expected_workloads().replace("replicas: 2", "replicas: 5")
    theirs = world.git.race_next_push(world.repo, {WORKLOADS: person_text}, "Scale podinfo-ga to 5")

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert not world.git.race_pending(world.repo)
    assert result.attempts == 2
    log = world.git.log(world.repo)
    assert [c.subject for c in log[:3]] == [CANARY, GA, "Scale podinfo-ga to 5"]
    assert log[2].sha == theirs
    assert [c.subject for c in log].count(GA) == 1 and [c.subject for c in log].count(CANARY) == 1
    # Planned again on the person's commit: their change is kept, the tags are changed on top of it.
    assert world.workloads() == person_text.replace(":0.1.0", ":0.1.2").replace(":0.2.0", ":0.2.1")
    assert [d.ref for d in result.deliveries] == [log[1].sha, log[0].sha]


def test_a_ref_locked_through_every_attempt_fails_the_cycle_and_changes_nothing(world: World) -> None:
    seed = world.git.head(world.repo)

    with world.git.holding_ref_lock(world.repo), pytest.raises(PushRejectedError, match="failed to update ref"):
        run_cycle(world.policy(), world.deps(), deliver=True)

    assert world.git.head(world.repo) == seed
    assert world.git.branches(world.repo) == ["main"]


def test_a_bot_branch_that_changed_while_pushing_gets_one_pull_request(pr_world: World) -> None:
    world = pr_world
    assert world.github is not None
    branch = f"gitbot/{POLICY}/podinfo-ga"
    world.git.race_next_push(world.repo, {"README.md": "racing\n"}, "racing push", branch=branch)

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert not world.git.race_pending(world.repo)
    assert [d.outcome for d in result.deliveries] == ["opened", "opened"]
    assert [p.head for p in world.github.list_pulls("all")].count(branch) == 1
    pushed = world.git.log(world.repo, branch)
    assert pushed[0].subject == GA
    assert world.git.read_file(world.repo, "README.md", branch) == "cluster configuration\n"


def test_once_retries_a_lost_race_without_git_lines_on_stderr(world: World) -> None:
    world.write_policy()
    world.git.race_next_push(world.repo, {"README.md": "edited while pushing\n"}, "docs: edit")
    done = gitbot(world, "once", "--policy", str(world.policy_path))

    assert done.returncode == 0, done.stderr
    assert not world.git.race_pending(world.repo)
    log = world.git.log(world.repo)
    assert done.stdout.splitlines() == [f"committed {log[1].sha}  {GA}", f"committed {log[0].sha}  {CANARY}"]
    assert log[2].subject == "docs: edit"
    assert "Error lines received" not in done.stderr
    assert "failed to push some refs" not in done.stderr
    assert world.env["GITBOT_GIT_TOKEN"] not in done.stdout + done.stderr
