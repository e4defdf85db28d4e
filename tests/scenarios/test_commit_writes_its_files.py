"""A cycle that commits writes no file of the working tree: the index is filled from git's objects and the
committed files' blobs go straight into them, in commit mode and in pull-request mode alike."""

from __future__ import annotations

import pytest

from gitbot.adapters.gitrepo import GitCheckout
from gitbot.cycle import run_cycle
from tests.scenarios.conftest import PATH, WORKLOADS, World, WorldFactory

pytestmark = pytest.mark.real

MORE = {f"{PATH}/more/app{i}.yaml": f"image: r.example.test/acme/more{i}:1.0.0\n" for i in range(20)}


@pytest.fixture
def written_at_push(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The working-tree files on disk each time a cycle pushes (a branch or a bot branch)."""
    seen: list[list[str]] = []
    push, push_branch = GitCheckout.push, GitCheckout.push_branch

    def pushing(self: GitCheckout) -> None:
        seen.append(sorted(str(p.relative_to(self._top)) for p in self._top.rglob("*.yaml")))
        push(self)

    def pushing_branch(self: GitCheckout, branch: str, sha: str, expected: str | None = None) -> None:
        seen.append(sorted(str(p.relative_to(self._top)) for p in self._top.rglob("*.yaml")))
        push_branch(self, branch, sha, expected)

    monkeypatch.setattr(GitCheckout, "push", pushing)
    monkeypatch.setattr(GitCheckout, "push_branch", pushing_branch)
    return seen


def test_a_commit_writes_no_file_of_the_working_tree(
    make_world: WorldFactory, written_at_push: list[list[str]]
) -> None:
    world = make_world(extra_files=MORE)
    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["committed", "committed"]
    assert written_at_push == [[]]
    assert world.workloads() == world.expected_workloads(ga="0.1.2", canary="0.2.1")
    assert "+++ b/" + WORKLOADS in result.diff


def test_pull_requests_write_no_file_of_the_working_tree(pr_world: World, written_at_push: list[list[str]]) -> None:
    result = run_cycle(pr_world.policy(), pr_world.deps(), deliver=True)

    assert sorted(d.outcome for d in result.deliveries) == ["opened", "opened"]
    assert written_at_push == [[], []]
    for name in ("podinfo-ga", "podinfo-canary"):
        assert pr_world.git.read_file(pr_world.repo, WORKLOADS, f"gitbot/production/{name}") != pr_world.workloads()
