"""A refused git credential says which user was sent with the token, so a wrong user is told from a bad token."""

from __future__ import annotations

import pytest

from gitbot.errors import GitAuthError
from tests.contract.git.conftest import WorkspaceFactory
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real


def test_the_right_token_with_the_wrong_user_names_the_user_sent(
    make_workspace: WorkspaceFactory, git_server: GitServer
) -> None:
    workspace = make_workspace(username="x-access-token")
    assert git_server.username != "x-access-token"
    with pytest.raises(GitAuthError) as caught, workspace.checkout():
        pass
    message, hint = caught.value.message, caught.value.hint or ""
    assert "as user 'x-access-token'" in message, message
    assert "spec.git.username" in hint, hint
    assert git_server.token not in message + hint


def test_no_token_says_none_was_sent(make_workspace: WorkspaceFactory) -> None:
    workspace = make_workspace(token=None)
    with pytest.raises(GitAuthError) as caught, workspace.checkout():
        pass
    assert "no token was sent" in caught.value.message, caught.value.message
    assert "spec.git.tokenEnv" in (caught.value.hint or "")
