"""The workspace's branch-name check never accepts a name git itself refuses."""

from __future__ import annotations

import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from gitbot.adapters.gitrepo import is_valid_branch

NAMES = st.text(alphabet="ab/.-@{}~^: *[\\é\x01", min_size=1, max_size=12)


def _git_accepts(name: str) -> bool:
    proc = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, check=False)
    return proc.returncode == 0


@settings(max_examples=60, deadline=None)
@given(NAMES)
def test_accepted_names_are_valid_for_git(name: str) -> None:
    if is_valid_branch(name):
        assert _git_accepts(name), name


def test_ordinary_names_are_accepted() -> None:
    for name in ("main", "release/2024-01", "gitbot/production/podinfo-ga", "env.prod", "é"):
        assert is_valid_branch(name) and _git_accepts(name), name
    for name in ("a.lock/b", "x/y.lock", "HEAD", "a..b", "-x", "a b", "a/", "/a", "a//b", "a@{1"):
        assert not is_valid_branch(name), name
