"""Fixtures for the git adapter contract: one loopback git server per session, a fresh repository per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.domain import Author
from tests.support.gitserver import GitServer, RepoFactory, git_server, new_git_repo

__all__ = ["git_server", "new_git_repo"]

BOT = Author("gitbot", "gitbot@example.test")
SEED = {
    "clusters/production/podinfo.yaml": "image: ghcr.io/acme/podinfo:0.1.1\n",
    "README.md": "config\n",
}


@pytest.fixture
def repo_name(new_git_repo: RepoFactory) -> str:
    name, _ = new_git_repo(SEED)
    return name


WorkspaceFactory = Callable[..., GitWorkspace]


@pytest.fixture
def make_workspace(git_server: GitServer, repo_name: str, tmp_path: Path) -> WorkspaceFactory:
    def make(**kwargs: object) -> GitWorkspace:
        options: dict[str, object] = {
            "token": git_server.token,
            "username": git_server.username,
            "author": BOT,
        }
        options.update(kwargs)
        return GitWorkspace(
            git_server.url_for(repo_name),
            "main",
            tmp_path / "cache",
            **options,  # type: ignore[arg-type]
        )

    return make
