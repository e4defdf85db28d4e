"""Local git repositories for a sandbox: seed a bare repository, read it back, date commits by a clock.

Owns the git commands a self-contained sandbox needs besides the cycle's own workspace: creating a bare
repository whose branch holds a given set of files, reading a file and the one-line log of a branch, and
`ClockedGitWorkspace`, a `GitWorkspace` whose commits carry the time of a `gitbot.ports.Clock` (so that an
accelerated clock and the commit history agree). It never touches a remote other than a local path.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.domain import Author
from gitbot.errors import GitError
from gitbot.ports import Clock


def _git(args: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    environ = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=environ, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError:
        raise GitError("git is not installed", hint="install git (make system-deps)") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise GitError(f"git {args[0]} failed in {cwd}: {detail}")
    return done.stdout


def _dated(author: Author, when: datetime) -> dict[str, str]:
    stamp = when.isoformat()
    return {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_COMMITTER_NAME": author.name,
        "GIT_COMMITTER_EMAIL": author.email,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }


def init_bare_repository(
    path: Path, branch: str, files: Mapping[str, str], message: str, author: Author, when: datetime
) -> str:
    """Create the bare repository `path` whose `branch` holds `files` in one commit; return its sha."""
    if path.exists() and any(path.iterdir()):
        raise GitError(f"refusing to create a repository in {path}: the directory is not empty")
    path.mkdir(parents=True, exist_ok=True)
    _git(["init", "--quiet", "--bare", f"--initial-branch={branch}", str(path)], cwd=path)
    with tempfile.TemporaryDirectory(prefix="gitbot-seed-") as tmp:
        work = Path(tmp)
        _git(["init", "--quiet", f"--initial-branch={branch}"], cwd=work)
        for name, text in files.items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        _git(["add", "--all"], cwd=work)
        _git(["commit", "--quiet", "--no-verify", "-m", message], cwd=work, env=_dated(author, when))
        _git(["push", "--quiet", str(path), f"HEAD:refs/heads/{branch}"], cwd=work)
        return _git(["rev-parse", "HEAD"], cwd=work).strip()


def read_file(repository: Path, branch: str, file: str) -> str:
    """The text of `file` at the head of `branch` in the (bare) `repository`."""
    return _git(["show", f"refs/heads/{branch}:{file}"], cwd=repository)


def head(repository: Path, branch: str) -> str:
    return _git(["rev-parse", f"refs/heads/{branch}"], cwd=repository).strip()


def log_oneline(repository: Path, branch: str) -> list[str]:
    """`git log --oneline` of `branch`, newest first."""
    return _git(["log", "--oneline", "--no-decorate", f"refs/heads/{branch}"], cwd=repository).splitlines()


def commit_message(repository: Path, sha: str) -> str:
    """The full message of commit `sha`."""
    return _git(["log", "-1", "--format=%B", sha], cwd=repository)


class ClockedGitWorkspace(GitWorkspace):
    """A GitWorkspace whose commits are dated by `clock` (author and committer date) instead of the wall clock.

    The date is taken when a cycle checks out, which is when the reconcile shell reads its clock too.
    """

    def __init__(self, url: str, branch: str, cache_dir: Path, *, author: Author, clock: Clock) -> None:
        super().__init__(url, branch, cache_dir, author=author)
        self._clock = clock

    def environment(self) -> dict[str, str]:
        stamp = self._clock.now().isoformat()
        return {**super().environment(), "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
