"""A pull request's branch updated on the condition that it still holds the head the pull request had when it
was read (`--force-with-lease`): of two replicas updating the same pull request at once, exactly one wins."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.errors import PushRejectedError
from gitbot.ports import Checkout
from tests.contract.git.conftest import BOT, SEED
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real

APP = "clusters/production/podinfo.yaml"
BRANCH = "gitbot/production/podinfo"


def replica(git_server: GitServer, repo_name: str, cache: Path) -> GitWorkspace:
    """A workspace with its own clone cache, as another gitbot process has."""
    return GitWorkspace(
        git_server.url_for(repo_name), "main", cache, token=git_server.token, username=git_server.username, author=BOT
    )


def open_pull_branch(git_server: GitServer, repo_name: str, cache: Path) -> str:
    with replica(git_server, repo_name, cache).checkout() as checkout:
        sha = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        checkout.push_branch(BRANCH, sha)
    head = git_server.head(repo_name, BRANCH)
    assert head == sha
    return head


def test_an_update_from_a_stale_head_loses_and_changes_nothing(
    git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    read = open_pull_branch(git_server, repo_name, tmp_path / "first")
    with replica(git_server, repo_name, tmp_path / "a").checkout() as a:
        mine = a.commit({APP: "image: ghcr.io/acme/podinfo:0.1.3\n"}, "gitbot(p): 0.1.3", BOT)
        a.push_branch(BRANCH, mine, read)
    assert git_server.head(repo_name, BRANCH) == mine
    with replica(git_server, repo_name, tmp_path / "b").checkout() as b:
        theirs = b.commit({APP: "image: ghcr.io/acme/podinfo:0.1.4\n"}, "gitbot(p): 0.1.4", BOT)
        with pytest.raises(PushRejectedError) as caught:
            b.push_branch(BRANCH, theirs, read)
    assert git_server.head(repo_name, BRANCH) == mine
    message = str(caught.value)
    assert f"refs/heads/{BRANCH}" in message and "stale info" in message
    assert "\n" not in message and git_server.token not in message
    assert git_server.read_file(repo_name, APP, BRANCH) == "image: ghcr.io/acme/podinfo:0.1.3\n"
    assert git_server.head(repo_name) == git_server.log(repo_name)[0].sha  # main untouched
    assert git_server.read_file(repo_name, APP) == SEED[APP]


def test_two_replicas_racing_an_update_of_one_branch_exactly_one_wins(
    git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    read = open_pull_branch(git_server, repo_name, tmp_path / "first")
    both_ready = threading.Barrier(2, timeout=30)
    won: dict[str, str] = {}
    lost: dict[str, BaseException] = {}

    def update(name: str, tag: str) -> None:
        with replica(git_server, repo_name, tmp_path / name).checkout() as checkout:
            sha = checkout.commit({APP: f"image: ghcr.io/acme/podinfo:{tag}\n"}, f"gitbot(p): {tag}", BOT)
            both_ready.wait()
            try:
                checkout.push_branch(BRANCH, sha, read)
            except PushRejectedError as exc:
                lost[name] = exc
            else:
                won[name] = sha

    threads = [threading.Thread(target=update, args=(name, tag)) for name, tag in (("a", "0.1.3"), ("b", "0.1.4"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1 and len(lost) == 1, (won, lost)
    assert git_server.head(repo_name, BRANCH) == next(iter(won.values()))


def test_the_same_commit_pushed_again_from_a_stale_head_is_not_a_win(
    git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    read = open_pull_branch(git_server, repo_name, tmp_path / "first")
    with replica(git_server, repo_name, tmp_path / "a").checkout() as checkout:
        sha = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.3\n"}, "gitbot(p): 0.1.3", BOT)
        checkout.push_branch(BRANCH, sha, read)
        # Another replica made the very same commit (same tree, parent, message and second) and pushed first.
        with pytest.raises(PushRejectedError, match="already has this commit"):
            checkout.push_branch(BRANCH, sha, read)
        # Pushed from the head it holds now, the same commit is simply there.
        checkout.push_branch(BRANCH, sha, sha)
    assert git_server.head(repo_name, BRANCH) == sha


def test_a_lease_still_force_pushes_a_branch_that_did_not_move(
    git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    read = open_pull_branch(git_server, repo_name, tmp_path / "first")
    checkout: Checkout
    with replica(git_server, repo_name, tmp_path / "a").checkout() as checkout:
        # Planned again from the environment branch: not a descendant of the old branch head.
        replaced = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.3\n"}, "gitbot(p): 0.1.3", BOT)
        checkout.push_branch(BRANCH, replaced, read)
    assert git_server.head(repo_name, BRANCH) == replaced
    assert git_server.git(repo_name, "rev-parse", f"{BRANCH}~1").strip() == git_server.head(repo_name)
