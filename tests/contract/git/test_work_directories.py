"""Work directories live under the cache directory, each claimed by a lock for its life: a process killed
mid-cycle (SIGKILL) leaves one behind that the next checkout removes, while one a live process holds stays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import GitWorkspace, sweep_work_directories, work_directory
from tests.contract.git.conftest import BOT, SEED, WorkspaceFactory
from tests.support.gitserver import GitServer, RepoFactory

pytestmark = pytest.mark.real

# A cycle in another process: check out, write a file, report the work directory, then wait for stdin.
_CYCLE = """
import json, sys
from pathlib import Path
from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.domain import Author

url, cache, user, token = sys.argv[1:5]
workspace = GitWorkspace(url, "main", Path(cache), username=user, token=token, author=Author("b", "b@example.test"))
with workspace.checkout() as checkout:
    (checkout.root / "half-done.txt").write_text("x\\n")
    print(json.dumps({"root": str(checkout.root)}), flush=True)
    sys.stdin.read()
"""


@contextmanager
def cycle_in_child(git_server: GitServer, url: str, cache: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A child process inside `checkout()` of `url`; yields it and its work directory."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CYCLE, url, str(cache), git_server.username, git_server.token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        yield child, Path(json.loads(line)["root"])
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_a_checkout_lives_under_the_cache_directory(make_workspace: WorkspaceFactory, tmp_path: Path) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        root = checkout.root
        assert root.parent == tmp_path / "cache" / "work"
        assert (root / "README.md").read_text() == SEED["README.md"]
        assert root.with_name(root.name + ".lock").is_file()
    assert list((tmp_path / "cache" / "work").iterdir()) == []


def test_a_cycle_killed_mid_checkout_leaves_a_directory_the_next_checkout_removes(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with cycle_in_child(git_server, git_server.url_for(repo_name), cache) as (child, left):
        assert (left / "half-done.txt").is_file()
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    assert (left / "half-done.txt").is_file(), "a killed cycle cannot clean up after itself"

    workspace = make_workspace()
    with workspace.checkout() as checkout:
        assert not left.exists()
        assert not left.with_name(left.name + ".lock").exists()
        assert sorted(p.name for p in (cache / "work").iterdir()) == sorted(
            [checkout.root.name, checkout.root.name + ".lock"]
        )
        # git forgets the killed cycle's worktree too: only this cycle's is registered in the cache.
        listed = subprocess.run(
            ["git", "--git-dir", str(workspace.cache_path), "worktree", "list", "--porcelain"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert str(left) not in listed and str(checkout.root) in listed
        assert not (checkout.root / "half-done.txt").exists()


def test_a_work_directory_a_live_process_holds_is_kept(
    make_workspace: WorkspaceFactory, git_server: GitServer, new_git_repo: RepoFactory, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    # A replica sharing the cache directory, in a cycle on another repository (its own cache lock).
    _other, other_url = new_git_repo(SEED)
    with cycle_in_child(git_server, other_url, cache) as (child, held):
        with make_workspace().checkout() as checkout:
            assert checkout.root != held
            assert (held / "half-done.txt").is_file()
        assert sweep_work_directories(cache) == []
        assert (held / "half-done.txt").is_file()
        assert child.poll() is None
        assert child.stdin is not None
        child.stdin.close()  # the replica's cycle ends and cleans up after itself
        assert child.wait(timeout=30) == 0
    assert not held.exists()
    assert list((cache / "work").iterdir()) == []


def test_a_sweep_removes_only_unlocked_work_directories(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with work_directory(cache, "config-1") as live:
        live.mkdir()
        (live / "file").write_text("in use\n")
        dead = cache / "work" / "config-1.0123456789ab"
        dead.mkdir()
        dead.with_name(dead.name + ".lock").write_text("")
        orphan = cache / "work" / "config-2.ba9876543210"
        orphan.mkdir()
        assert sorted(sweep_work_directories(cache)) == sorted([dead, orphan])
        assert (live / "file").read_text() == "in use\n"
        assert sorted(p.name for p in (cache / "work").iterdir()) == sorted([live.name, live.name + ".lock"])
    assert list((cache / "work").iterdir()) == []
    assert sweep_work_directories(tmp_path / "missing") == []


def test_a_half_made_clone_of_a_killed_cycle_is_removed(make_workspace: WorkspaceFactory, tmp_path: Path) -> None:
    workspace = make_workspace()
    cache = tmp_path / "cache"
    cache.mkdir()
    half = cache / f"{workspace.cache_path.name}.init-k1ll3d"
    (half / "objects").mkdir(parents=True)
    other = cache / "another-0123456789abcdef.init-x"
    other.mkdir()
    with workspace.checkout():
        pass
    assert not half.exists()
    assert other.exists(), "another repository's clone may be in the making"


def test_workspace_is_usable_from_a_new_instance_after_a_kill(
    git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with cycle_in_child(git_server, git_server.url_for(repo_name), cache) as (child, _left):
        child.kill()
        child.wait(timeout=30)
    workspace = GitWorkspace(
        git_server.url_for(repo_name), "main", cache, username=git_server.username, token=git_server.token, author=BOT
    )
    with workspace.checkout() as checkout:
        checkout.commit({"after-kill.txt": "x\n"}, "gitbot(p): after a kill", BOT)
        checkout.push()
    assert git_server.log(repo_name)[0].subject == "gitbot(p): after a kill"
    assert list((cache / "work").iterdir()) == []
