"""A commit of more paths and a longer message than an argument list holds (Linux: 128 KiB for one argument,
about 2 MiB for all): both reach git through standard input, and every path is taken literally."""

from __future__ import annotations

import pytest

from gitbot.errors import GitError
from tests.contract.git.conftest import BOT, WorkspaceFactory
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real

FILES = 12_000
FOLDER = "clusters/production/" + "/".join(["a-long-folder-name-as-generated-by-some-tool"] * 3)


def _path(i: int) -> str:
    return f"{FOLDER}/workload-{i:05d}.yaml"


def test_thousands_of_long_paths_and_a_long_message_make_one_commit(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    files = {_path(i): f"image: registry.example/app-{i}:1.0.1\n" for i in range(FILES)}
    assert sum(len(path) + 1 for path in files) > 2 * 1024 * 1024, "the paths alone overflow an argument list"
    body = "\n".join(f"  {path}: 1.0.0 -> 1.0.1" for path in files)
    message = f"gitbot(production): update {FILES} workloads\n\n{body}\n\nGitbot-Policy: production\n"
    assert len(message) > 128 * 1024, "the message overflows one argument"
    with make_workspace().checkout() as checkout:
        sha = checkout.commit(files, message, BOT)
        checkout.push()
    assert git_server.head(repo_name) == sha
    listed = git_server.git(repo_name, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()
    assert sorted(listed) == sorted(files)
    assert git_server.message(repo_name).rstrip("\n") == message.rstrip("\n")


def test_paths_are_literal_not_patterns(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    with make_workspace().checkout() as checkout:
        (checkout.root / "clusters/a1.yaml").write_text("touched, not given\n")
        sha = checkout.commit({"clusters/a[1].yaml": "given\n"}, "add a[1]\n", BOT)
        checkout.push()
    assert git_server.git(repo_name, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split() == [
        "clusters/a[1].yaml"
    ]


def test_nothing_to_commit_names_a_bounded_number_of_paths(make_workspace: WorkspaceFactory) -> None:
    with make_workspace().checkout() as checkout:
        same = {f"clusters/same-{i}.yaml": "x\n" for i in range(30)}
        checkout.commit(same, "add\n", BOT)
        with pytest.raises(GitError) as caught:
            checkout.commit(same, "again\n", BOT)
    line = caught.value.one_line()
    assert "clusters/same-0.yaml" in line and "and 20 more already hold this content" in line
    assert "clusters/same-29.yaml" not in line
