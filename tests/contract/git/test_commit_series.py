"""A series of commits made without a working tree is one `git fast-import` and one move of HEAD: each commit
is what `git commit` would have made of the same files and message (cleaned message, identities and dates from
git itself, literal paths), and a series with one commit that cannot be made is refused whole."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitbot.adapters.gitrepo import _clean_message, object_id
from gitbot.domain import Author
from gitbot.errors import GitError
from gitbot.ports import NewCommit
from tests.contract.git.conftest import BOT, WorkspaceFactory
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real

APP = "clusters/production/podinfo.yaml"


def _git_stripspace(message: str) -> str:
    return subprocess.run(
        ["git", "stripspace"], input=message.encode(), capture_output=True, check=True
    ).stdout.decode()


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", "é", " ", "\t", "\r", "\n", "\v", "\f", "#"]), max_size=40))
def test_a_message_is_cleaned_as_git_cleans_it(message: str) -> None:
    assert _clean_message(message) == _git_stripspace(message)


def test_a_series_is_a_chain_of_commits_each_with_its_own_files_message_and_author(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    person = Author("Release Bot (prod)", "release@example.test")
    series = [
        NewCommit({APP: "image: app:1.0.1\n"}, "first\n\n\n  body  \n\n", BOT),
        NewCommit({APP: "image: app:1.0.2\n", "clusters/new/one.yaml": "a: 1\n"}, "second\n", person),
        NewCommit({"clusters/new/one.yaml": "a: 2\n"}, "third", BOT),
    ]
    before = git_server.head(repo_name)
    with make_workspace().checkout() as checkout:
        shas = checkout.commit_series(series)
        assert checkout.head == shas[-1]
        checkout.push()
    assert git_server.head(repo_name) == shas[-1]
    parents = [git_server.git(repo_name, "rev-parse", f"{sha}^").strip() for sha in shas]
    assert parents == [before, shas[0], shas[1]]
    assert git_server.message(repo_name, shas[0]) == "first\n\n  body\n\n"
    assert git_server.git(repo_name, "show", "-s", "--format=%an <%ae>|%cn", shas[1]).strip() == (
        "Release Bot (prod) <release@example.test>|"
        + git_server.git(repo_name, "show", "-s", "--format=%cn", shas[0]).strip()
    )
    assert git_server.git(repo_name, "show", f"{shas[1]}:{APP}") == "image: app:1.0.2\n"
    assert git_server.git(repo_name, "show", f"{shas[2]}:clusters/new/one.yaml") == "a: 2\n"
    assert git_server.git(repo_name, "diff-tree", "--no-commit-id", "--name-only", "-r", shas[2]).split() == [
        "clusters/new/one.yaml"
    ]


def test_dates_come_from_the_environment_as_git_commit_takes_them(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-02T03:04:05+02:00")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "@1767225600 +0000")
    with make_workspace().checkout() as checkout:
        (sha,) = checkout.commit_series([NewCommit({APP: "image: app:9\n"}, "dated\n", BOT)])
        checkout.push()
    assert git_server.git(repo_name, "show", "-s", "--format=%ad|%cd", "--date=raw", sha).strip() == (
        "1767315845 +0200|1767225600 +0000"
    )


@pytest.mark.parametrize(
    "path",
    [
        'clusters/a "quoted" name.yaml',
        "clusters/back\\slash.yaml",
        "clusters/tab\tand\nnewline.yaml",
        "clusters/ünï.yaml",
    ],
)
def test_any_path_is_written_literally(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str, path: str
) -> None:
    with make_workspace().checkout() as checkout:
        sha = checkout.commit({path: "x: 1\n"}, f"add {path!r}\n", BOT)
        checkout.push()
    listed = git_server.git(repo_name, "diff-tree", "-z", "--no-commit-id", "--name-only", "-r", sha)
    assert listed.split("\0")[:-1] == [path]


def test_a_series_with_a_commit_that_changes_nothing_is_refused_whole(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    before = git_server.head(repo_name)
    with make_workspace().checkout() as checkout:
        current = checkout.read([APP])[APP].decode()
        head = checkout.head
        with pytest.raises(GitError, match=re.escape(f"nothing to commit: {APP} already hold")):
            checkout.commit_series(
                [
                    NewCommit({APP: "image: app:1.0.1\n"}, "one\n", BOT),
                    NewCommit({APP: "image: app:1.0.1\n"}, "two\n", BOT),
                ]
            )
        assert checkout.head == head
        with pytest.raises(GitError, match="nothing to commit"):
            checkout.commit({APP: current}, "same\n", BOT)
        # What was refused left nothing behind: the next series starts from the same head.
        (sha,) = checkout.commit_series([NewCommit({APP: "image: app:1.0.1\n"}, "one\n", BOT)])
        checkout.push()
    assert git_server.git(repo_name, "rev-parse", f"{sha}^").strip() == before


def test_a_file_is_not_written_where_a_file_stands_in_the_path(make_workspace: WorkspaceFactory) -> None:
    with make_workspace().checkout() as checkout:
        head = checkout.head
        with pytest.raises(GitError, match=re.escape(f"{APP!r} is not a folder")):
            checkout.commit({f"{APP}/inner.yaml": "a: 1\n"}, "under a file\n", BOT)
        with pytest.raises(GitError, match=re.escape("'clusters/new.yaml' is not a folder")):
            checkout.commit_series(
                [
                    NewCommit({"clusters/new.yaml": "a: 1\n"}, "a file\n", BOT),
                    NewCommit({"clusters/new.yaml/x.yaml": "a: 1\n"}, "under it\n", BOT),
                ]
            )
        assert checkout.head == head


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_a_files_blob_id_is_the_one_git_gives_it_in_either_object_format(tmp_path: Path, object_format: str) -> None:
    repo = tmp_path / object_format
    subprocess.run(["git", "init", "--quiet", f"--object-format={object_format}", str(repo)], check=True)
    data = "image: app:1.0.1\r\nü\n".encode()
    given = (
        subprocess.run(["git", "hash-object", "--stdin"], input=data, cwd=repo, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    head = "0" * len(given)  # a commit id of the repository's length
    assert object_id(data, head) == given


def test_a_series_leaves_no_file_outside_its_work_directory_and_needs_no_shared_lock(
    make_workspace: WorkspaceFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What a run killed at the wrong moment leaves: a temporary file, or the shared packed-refs lock held.
    temporary = tmp_path / "tmpdir"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        (workspace.cache_path / "packed-refs.lock").write_text("")
        shas = checkout.commit_series([NewCommit({APP: "image: app:1.0.1\n"}, "one\n", BOT)])
        checkout.push()
    assert list(temporary.iterdir()) == []
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)"],
        cwd=workspace.cache_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [ref for ref in refs if "gitbot-commits" in ref], refs
    assert len(shas) == 1
