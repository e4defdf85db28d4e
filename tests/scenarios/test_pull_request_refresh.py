"""A bot pull request that no longer merges is planned again from the branch head and updated in place.

Whole cycles against the real git server and the GitHub fake: a person edits the line the pull request
changes, or the line next to it, on the environment branch; the pull request keeps its number, its head
branch is force-pushed with a commit on the new branch head that merges cleanly, and the environment branch is
never touched. A person's change elsewhere leaves the pull request as it is (no push, no edit).
"""

from __future__ import annotations

import pytest

from gitbot.cycle import run_cycle
from tests.scenarios.conftest import POLICY, WORKLOADS, World, image_yaml
from tests.support.github_fake import FakePull

pytestmark = pytest.mark.real

GA_BRANCH = f"gitbot/{POLICY}/podinfo-ga"


def open_ga_pull(world: World) -> FakePull:
    """A ga-only policy whose first cycle opens the pull request for 0.1.0 -> 0.1.2."""
    assert world.github is not None
    world.write_policy(images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod"))
    world.github.follow_refs(lambda branch: world.git.head(world.repo, branch))
    first = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in first.deliveries] == ["opened"]
    (pull,) = world.github.list_pulls()
    return pull


def merges_cleanly(world: World, ours: str, theirs: str) -> bool:
    try:
        world.git.git(world.repo, "merge-tree", "--write-tree", "--no-messages", ours, theirs)
    except RuntimeError:
        return False
    return True


def person_edits_workloads(world: World, old: str, new: str) -> str:
    text = world.workloads()
    assert text.count(old) == 1
    return world.git.commit_as_other(world.repo, {WORKLOADS: text.replace(old, new)}, "a person's edit")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("0.1.0   # GA", "0.1.0   # GA, reviewed by ops", id="same-line"),
        pytest.param("0.1.0   # GA\n", "0.1.0   # GA\n          imagePullPolicy: Always\n", id="next-line"),
    ],
)
def test_conflicting_pull_request_is_planned_again_from_the_branch_head(pr_world: World, old: str, new: str) -> None:
    world = pr_world
    pull = open_ga_pull(world)
    first_head = world.git.head(world.repo, GA_BRANCH)
    person = person_edits_workloads(world, old, new)
    assert not merges_cleanly(world, "main", GA_BRANCH), "the edit must conflict with the pull request"

    refreshed = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [(d.name, d.outcome) for d in refreshed.deliveries] == [("podinfo-ga", "updated")]
    assert refreshed.deliveries[0].ref.endswith(f"/pull/{pull.number}")
    assert world.git.head(world.repo) == person, "the environment branch is never pushed in pull-request mode"
    new_head = world.git.head(world.repo, GA_BRANCH)
    assert new_head != first_head
    assert world.git.git(world.repo, "rev-parse", f"{GA_BRANCH}~1").strip() == person
    assert merges_cleanly(world, "main", GA_BRANCH)
    # The person's edit is kept; only the tag moves.
    expected = world.expected_workloads(ga="0.1.2").replace(
        old.replace("0.1.0", "0.1.2"), new.replace("0.1.0", "0.1.2")
    )
    assert world.workloads(GA_BRANCH) == expected
    assert world.github is not None
    (same,) = world.github.list_pulls()
    assert (same.number, same.state, same.title) == (pull.number, "open", pull.title)
    assert world.github.pull_json(same)["head"]["sha"] == new_head

    again = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in again.deliveries] == ["unchanged"]
    assert world.git.head(world.repo, GA_BRANCH) == new_head


def test_unrelated_change_on_the_branch_leaves_the_pull_request_unchanged(pr_world: World) -> None:
    world = pr_world
    pull = open_ga_pull(world)
    head = world.git.head(world.repo, GA_BRANCH)
    world.git.commit_as_other(world.repo, {"README.md": "cluster configuration, now with a note\n"}, "docs")
    assert world.github is not None
    edits_before = len(world.github.requests("PATCH"))
    seen = len(world.git.requests)

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["unchanged"]
    assert world.git.head(world.repo, GA_BRANCH) == head
    assert len(world.github.requests("PATCH")) == edits_before
    mine = [line for line in world.git.requests[seen:] if f"/{world.repo}.git/" in line]
    assert not any("receive-pack" in line for line in mine), "nothing is pushed"
    # The pull request's head is a commit the bot pushed from this cache: checked without fetching it.
    assert sum("info/refs?service=git-upload-pack" in line for line in mine) == 1, mine
    (same,) = world.github.list_pulls()
    assert (same.number, same.state) == (pull.number, "open")


def test_change_to_another_line_of_the_same_file_leaves_the_pull_request_unchanged(pr_world: World) -> None:
    world = pr_world
    open_ga_pull(world)
    head = world.git.head(world.repo, GA_BRANCH)
    person_edits_workloads(world, "replicas: 2", "replicas: 3")
    assert merges_cleanly(world, "main", GA_BRANCH)

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["unchanged"]
    assert world.git.head(world.repo, GA_BRANCH) == head


def test_pull_request_whose_change_a_person_made_is_closed_not_refreshed(pr_world: World) -> None:
    world = pr_world
    pull = open_ga_pull(world)
    person_edits_workloads(world, "0.1.0   # GA", "0.1.2   # GA, set by hand")

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["closed"]
    assert world.github is not None
    assert world.github.pulls[pull.number].state == "closed"
