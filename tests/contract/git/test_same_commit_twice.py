"""Two replicas that make the very same commit (same files, parent, message and second): the one that pushes
second delivered nothing, and its push says so as a rejected push, so that it re-plans instead of reporting
the other's change as its own."""

from __future__ import annotations

import pytest

from gitbot.errors import PushRejectedError
from tests.contract.git.conftest import BOT, WorkspaceFactory
from tests.support.gitserver import GitServer


def test_pushing_a_commit_the_branch_already_has_is_a_rejected_push(
    make_workspace: WorkspaceFactory,
    git_server: GitServer,
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both replicas commit in the same second: git dates have one-second resolution.
    monkeypatch.setenv("GIT_AUTHOR_DATE", "@1767225600 +0000")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "@1767225600 +0000")
    first = make_workspace()
    files = {"clusters/production/podinfo.yaml": "image: ghcr.io/acme/podinfo:0.1.2\n"}
    message = "gitbot(production): podinfo 0.1.1 -> 0.1.2"
    with first.checkout() as a:
        sha_a = a.commit(files, message, BOT)
        a.push()
    assert git_server.head(repo_name) == sha_a
    other = make_workspace()
    with other.checkout() as b:
        b.reset(f"{sha_a}~1")
        sha_b = b.commit(files, message, BOT)
        assert sha_b == sha_a, "the two commits must be the same object for this test"
        with pytest.raises(PushRejectedError, match="already has this commit"):
            b.push()
    assert git_server.head(repo_name) == sha_a
