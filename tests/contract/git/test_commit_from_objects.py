"""A commit from a checkout whose files were never written takes its blobs straight into git's objects: no
file of the working tree is written, each file keeps its mode (an executable stays one), its bytes are
exactly the text given (CRLF line ends too), and nothing is written through or over what is not a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitbot.errors import GitError
from tests.contract.git.conftest import BOT, WorkspaceFactory
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real

SCRIPT = "bin/deploy.sh"
CRLF = "clusters/production/windows.yaml"
LINK = "linked"


def _add_entries(git_server: GitServer, name: str, entries: dict[str, tuple[str, str]], tmp: Path) -> None:
    """A commit on main of `name` adding `entries` (path -> (mode, content)), made with git's plumbing."""
    env = {
        "GIT_INDEX_FILE": str(tmp / "seed-index"),
        "GIT_AUTHOR_NAME": "Other Person",
        "GIT_AUTHOR_EMAIL": "other@example.test",
        "GIT_COMMITTER_NAME": "Other Person",
        "GIT_COMMITTER_EMAIL": "other@example.test",
    }
    parent = git_server.head(name)
    assert parent is not None
    git_server.git(name, "read-tree", parent, env=env)
    for path, (mode, content) in entries.items():
        blob = git_server.git(name, "hash-object", "-w", "--stdin", input_text=content).strip()
        git_server.git(name, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
    tree = git_server.git(name, "write-tree", env=env).strip()
    commit = git_server.git(
        name, "commit-tree", tree, "-p", parent, input_text="Add a script, a link and CRLF\n", env=env
    )
    git_server.git(name, "update-ref", "refs/heads/main", commit.strip())


def _entry(git_server: GitServer, name: str, path: str) -> tuple[str, str]:
    """(mode, content) of `path` at main of `name`."""
    mode, _kind, blob = git_server.git(name, "ls-tree", "main", "--", path).split("\t")[0].split()
    return mode, git_server.git(name, "cat-file", "blob", blob)


def test_a_commit_keeps_modes_and_bytes_and_writes_no_file(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    _add_entries(
        git_server,
        repo_name,
        {
            SCRIPT: ("100755", "#!/bin/sh\necho 1\n"),
            CRLF: ("100644", "a: 1\r\nb: 2\r\n"),
            LINK: ("120000", "clusters"),
        },
        tmp_path,
    )
    files = {
        SCRIPT: "#!/bin/sh\necho 2\n",
        CRLF: "a: 1\r\nb: 3\r\n",
        "clusters/production/new.yaml": "new: 1\n",
    }
    cache = tmp_path / "cache"
    with make_workspace().checkout() as checkout:
        sha = checkout.commit(files, "Change a script, a CRLF file and add one\n", BOT)
        assert not checkout.written
        assert [p.name for p in cache.rglob("*") if p.name in {"deploy.sh", "windows.yaml", "new.yaml"}] == []
        assert checkout.read([CRLF]) == {CRLF: b"a: 1\r\nb: 3\r\n"}
        checkout.push()

    assert git_server.head(repo_name) == sha
    assert _entry(git_server, repo_name, SCRIPT) == ("100755", "#!/bin/sh\necho 2\n")
    assert _entry(git_server, repo_name, "clusters/production/new.yaml") == ("100644", "new: 1\n")
    assert _entry(git_server, repo_name, LINK) == ("120000", "clusters")
    blob = git_server.git(repo_name, "rev-parse", f"main:{CRLF}").strip()
    size = git_server.git(repo_name, "cat-file", "-s", blob).strip()
    assert size == str(len(b"a: 1\r\nb: 3\r\n"))
    listed = git_server.git(repo_name, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()
    assert sorted(listed) == sorted(files)


def test_a_commit_writes_nothing_through_a_link_or_over_a_folder(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    _add_entries(git_server, repo_name, {LINK: ("120000", "clusters")}, tmp_path)
    before = git_server.head(repo_name)
    with make_workspace().checkout() as checkout:
        with pytest.raises(GitError, match="symbolic link"):
            checkout.commit({f"{LINK}/production/podinfo.yaml": "image: evil\n"}, "through a link\n", BOT)
        with pytest.raises(GitError, match="refusing to write 'clusters/production': it is a dir"):
            checkout.commit({"clusters/production": "over a folder\n"}, "over a folder\n", BOT)
        assert checkout.head == before
    assert git_server.head(repo_name) == before


def test_a_commit_after_a_reset_to_the_listed_head_checks_that_heads_tree(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    # A rejected push resets the checkout to the head it had listed; the next commit starts from there.
    _add_entries(
        git_server, repo_name, {SCRIPT: ("100755", "#!/bin/sh\necho 1\n"), LINK: ("120000", "clusters")}, tmp_path
    )
    with make_workspace().checkout() as checkout:
        base = checkout.head
        checkout.commit({SCRIPT: "#!/bin/sh\necho 2\n"}, "First try\n", BOT)
        checkout.reset(base)
        with pytest.raises(GitError, match="symbolic link"):
            checkout.commit({f"{LINK}/production/podinfo.yaml": "image: evil\n"}, "through a link\n", BOT)
        sha = checkout.commit({SCRIPT: "#!/bin/sh\necho 3\n"}, "Second try\n", BOT)
        checkout.push()
    assert git_server.head(repo_name) == sha
    assert _entry(git_server, repo_name, SCRIPT) == ("100755", "#!/bin/sh\necho 3\n")
