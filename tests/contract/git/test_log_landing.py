"""`Checkout.log` lists the branch in the order changes landed on it, on a real repository served over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.contract.git.conftest import WorkspaceFactory
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real

DAY = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return DAY.replace(minute=minute)


def stamp(minute: int) -> dict[str, str]:
    text = f"@{int(at(minute).timestamp())} +0000"
    person = {"GIT_AUTHOR_NAME": "Pat", "GIT_AUTHOR_EMAIL": "pat@example.test"}
    person |= {"GIT_COMMITTER_NAME": "Pat", "GIT_COMMITTER_EMAIL": "pat@example.test"}
    return person | {"GIT_AUTHOR_DATE": text, "GIT_COMMITTER_DATE": text}


def test_a_merged_branch_lands_at_the_merge_whatever_its_commit_dates(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    seed = git_server.head(repo_name)
    assert seed is not None
    git_server.git(repo_name, "branch", "change", "main")
    old = git_server.commit_as_other(
        repo_name, {"change.txt": "made early\n"}, "old change", branch="change", date=at(1)
    )
    newer = git_server.commit_as_other(repo_name, {"main.txt": "made later\n"}, "newer change", date=at(2))
    tree = git_server.git(repo_name, "merge-tree", "--write-tree", newer, old).split()[0]
    merge = git_server.git(
        repo_name, "commit-tree", tree, "-p", newer, "-p", old, input_text="Merge branch 'change'\n", env=stamp(30)
    ).strip()
    git_server.git(repo_name, "update-ref", "refs/heads/main", merge, newer)

    workspace = make_workspace()
    with workspace.checkout() as checkout:
        log = checkout.log()
        cut = checkout.log(2)
    # The fetch wrote a commit-graph, so `--topo-order` need not walk the whole branch.
    graphs = workspace.cache_path / "objects" / "info"
    assert (graphs / "commit-graph").exists() or any((graphs / "commit-graphs").glob("*.graph"))
    assert [c.sha for c in log] == [merge, old, newer, seed]
    assert [c.landed for c in log[:3]] == [at(30), at(30), at(2)]
    assert log[1].committed_at == at(1)
    # A log cut short keeps what landed last: by commit date it would hold the newer change instead.
    assert [c.sha for c in cut] == [merge, old]
