"""Pushes the real git server takes but refuses: a ref that changed while it was received is a
`PushRejectedError` (fetch, re-plan, retry; never forced), other refusals are one-line errors with their reason."""

from __future__ import annotations

import pytest

from gitbot.errors import GitError, PushRejectedError
from tests.contract.git.conftest import BOT, SEED, WorkspaceFactory
from tests.support.gitserver import OTHER_EMAIL, GitServer

pytestmark = pytest.mark.real

APP = "clusters/production/podinfo.yaml"
BRANCH = "gitbot/production/podinfo"


def test_a_ref_moved_while_the_push_is_received_is_a_rejected_push(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    with make_workspace().checkout() as checkout:
        checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        theirs = git_server.race_next_push(repo_name, {"README.md": "edited while pushing\n"}, "docs: edit")
        with pytest.raises(PushRejectedError) as caught:
            checkout.push()
        assert not git_server.race_pending(repo_name)
        assert git_server.head(repo_name) == theirs
        message = str(caught.value)
        assert "refs/heads/main changed while pushing ([remote rejected] (failed to update ref))" in message
        assert "\n" not in message
        assert caught.value.retryable
        # The caller's cure: fetch, plan again on the new head, push once more.
        checkout.refresh()
        mine = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        checkout.push()
    log = git_server.log(repo_name)
    assert [c.sha for c in log[:2]] == [mine, theirs]
    assert log[1].author_email == OTHER_EMAIL
    assert [c.subject for c in log].count("gitbot(p): 0.1.2") == 1


def test_a_held_ref_lock_is_a_rejected_push_and_changes_nothing(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    base = git_server.head(repo_name)
    with make_workspace().checkout() as checkout:
        checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        with git_server.holding_ref_lock(repo_name), pytest.raises(PushRejectedError, match="failed to update ref"):
            checkout.push()
        checkout.push()  # the lock is gone: the same commit goes through
        pushed = checkout.head
    assert git_server.head(repo_name) == pushed
    assert git_server.log(repo_name)[1].sha == base


def test_the_bot_branch_is_pushed_again_when_it_changed_while_pushing(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    with make_workspace().checkout() as checkout:
        checkout.push_branch(BRANCH, checkout.head)
        sha = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        git_server.race_next_push(repo_name, {"README.md": "racing\n"}, "racing push", branch=BRANCH)
        checkout.push_branch(BRANCH, sha)
    assert not git_server.race_pending(repo_name)
    assert git_server.head(repo_name, BRANCH) == sha
    assert git_server.read_file(repo_name, "README.md", BRANCH) == SEED["README.md"]


def test_a_bot_branch_that_stays_locked_is_a_rejected_push(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    with make_workspace().checkout() as checkout:
        sha = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        with git_server.holding_ref_lock(repo_name, BRANCH), pytest.raises(PushRejectedError) as caught:
            checkout.push_branch(BRANCH, sha)
    assert f"refs/heads/{BRANCH} changed while pushing" in str(caught.value)
    assert git_server.head(repo_name, BRANCH) is None


def test_a_declining_hook_is_an_error_with_its_reason_not_a_retry(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    base = git_server.head(repo_name)
    with make_workspace().checkout() as checkout:
        checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        with git_server.declining_pushes(repo_name, "main is protected: open a pull request"):
            with pytest.raises(GitError) as on_main:
                checkout.push()
            with pytest.raises(GitError) as on_branch:
                checkout.push_branch(BRANCH, checkout.head)
    for caught in (on_main, on_branch):
        assert not isinstance(caught.value, PushRejectedError)
        message = str(caught.value)
        assert "[remote rejected] (pre-receive hook declined)" in message
        assert message.endswith("remote said: main is protected: open a pull request")
        assert "\n" not in message
        assert git_server.token not in message
    assert git_server.head(repo_name) == base
    assert git_server.head(repo_name, BRANCH) is None
