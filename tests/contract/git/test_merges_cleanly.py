"""Contract of `GitCheckout.merges_cleanly` against the real git server: git's own merge decides whether a bot
branch still merges into the branch head, with the forge's head sha used when the commit is here already."""

from __future__ import annotations

import pytest

from gitbot.errors import GitError
from tests.contract.git.conftest import BOT, WorkspaceFactory
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real

APP = "clusters/production/podinfo.yaml"
BRANCH = "gitbot/production/podinfo"


def upload_pack_requests(git_server: GitServer, repo_name: str, since: int) -> int:
    return sum(f"/{repo_name}.git/info/refs?service=git-upload-pack" in line for line in git_server.requests[since:])


def test_clean_conflicting_and_missing_branches(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        base = checkout.head
        bot = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        checkout.push_branch(BRANCH, bot)
        checkout.reset(base)
        assert checkout.merges_cleanly(BRANCH, bot)
        assert checkout.merges_cleanly(BRANCH)
        assert not checkout.merges_cleanly("gitbot/production/gone")

    # A change elsewhere still merges; a change to the same line does not.
    git_server.commit_as_other(repo_name, {"README.md": "config, edited\n"}, "docs")
    with workspace.checkout() as checkout:
        assert checkout.merges_cleanly(BRANCH, bot)
    git_server.commit_as_other(repo_name, {APP: "image: ghcr.io/acme/podinfo:0.1.1  # pinned\n"}, "pin")
    with workspace.checkout() as checkout:
        head = checkout.head
        assert not checkout.merges_cleanly(BRANCH, bot)
        assert not checkout.merges_cleanly(BRANCH)
        # Nothing moved: neither the working copy nor any branch.
        assert checkout.head == head
        assert (checkout.root / APP).read_text() == "image: ghcr.io/acme/podinfo:0.1.1  # pinned\n"
        assert (checkout.root / "README.md").read_text() == "config, edited\n"
    assert git_server.head(repo_name, BRANCH) == bot


def test_known_head_is_not_fetched_an_unknown_one_is(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        base = checkout.head
        bot = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        checkout.push_branch(BRANCH, bot)
        checkout.reset(base)
        seen = len(git_server.requests)
        assert checkout.merges_cleanly(BRANCH, bot)
        assert upload_pack_requests(git_server, repo_name, seen) == 0
        # A head the forge reports that this repository lacks (someone else pushed it) is fetched.
        assert checkout.merges_cleanly(BRANCH, "f" * 40)
        assert upload_pack_requests(git_server, repo_name, seen) == 1


def test_only_bot_branches_are_checked(make_workspace: WorkspaceFactory) -> None:
    with make_workspace().checkout() as checkout:
        for branch in ("main", "release", "gitbot/bad..name"):
            with pytest.raises(GitError, match="refusing to merge"):
                checkout.merges_cleanly(branch)
