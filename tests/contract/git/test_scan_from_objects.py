"""A checkout answers `files` and `read` from git's objects: a cycle that only scans writes no working tree,
and what it finds is what a walk of the written tree finds (symbolic links and all)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import GitCheckout
from gitbot.errors import GitError, ManifestError, MissingPathError
from gitbot.manifests import ScanCache, blob_id, scan_files, walk_files
from gitbot.ports import Checkout
from tests.contract.git.conftest import BOT, WorkspaceFactory
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real

TREE = {
    "clusters/prod/app.yaml": "image: r.example.test/app:1.0.0\n",
    "clusters/prod/b.yml": "kind: Service\r\nmetadata: {name: b}\r\n",
    "clusters/prod/notes.txt": "image: not yaml by name\n",
    "clusters/prod/.hidden/skip.yaml": "image: r.example.test/hidden:1\n",
    "clusters/prod/.dot.yaml": "image: r.example.test/dot:1\n",
    "clusters/prod/z/deeper/x.yaml": "image: r.example.test/x:2\n",
    "clusters/prod/a-first.yaml": "weight: 10\n",
    "clusters/prod/a/inner.yaml": "image: r.example.test/inner:3\n",
    "clusters/staging/s.yaml": "image: r.example.test/s:1\n",
    "big/huge.yaml": "image: r.example.test/huge:1\n" + "# padding\n" * 200,
}


def add_links(server: GitServer, name: str, links: dict[str, str]) -> str:
    """Commit symbolic links (path -> target) on main in the bare repository `name`."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_AUTHOR_NAME": "p", "GIT_AUTHOR_EMAIL": "p@e.test"}
        env |= {"GIT_COMMITTER_NAME": "p", "GIT_COMMITTER_EMAIL": "p@e.test"}
        parent = server.git(name, "rev-parse", "refs/heads/main").strip()
        server.git(name, "read-tree", parent, env=env)
        for path, target in links.items():
            blob = server.git(name, "hash-object", "-w", "--stdin", input_text=target, env=env).strip()
            server.git(name, "update-index", "--add", "--cacheinfo", f"120000,{blob},{path}", env=env)
        tree = server.git(name, "write-tree", env=env).strip()
        sha = server.git(name, "commit-tree", tree, "-p", parent, input_text="links\n", env=env).strip()
        server.git(name, "update-ref", "refs/heads/main", sha)
        return sha


def work_files(cache: Path) -> list[Path]:
    """Every file under the cache's work directories except git's own administration file."""
    return [p for p in (cache / "work").rglob("*") if p.is_file() and p.name != ".git" and p.suffix != ".lock"]


@pytest.fixture
def tree_repo(git_server: GitServer, repo_name: str) -> str:
    git_server.commit_as_other(repo_name, TREE, "a tree to scan")
    return repo_name


def test_scanning_reads_git_objects_and_writes_no_working_tree(
    make_workspace: WorkspaceFactory, tree_repo: str, tmp_path: Path
) -> None:
    workspace = make_workspace()
    cache = ScanCache()
    with workspace.checkout() as checkout:
        assert isinstance(checkout, GitCheckout)
        files = checkout.files(["clusters/prod", "clusters/staging/s.yaml"])
        scan = scan_files(files, checkout.read, cache=cache)
        assert not checkout.written
        assert work_files(tmp_path / "cache") == []
        assert {t.file for t in scan.targets} == {
            "clusters/prod/app.yaml",
            "clusters/prod/.dot.yaml",
            "clusters/prod/a/inner.yaml",
            "clusters/prod/z/deeper/x.yaml",
            "clusters/staging/s.yaml",
        }
        assert checkout.read(["clusters/prod/b.yml"]) == {"clusters/prod/b.yml": TREE["clusters/prod/b.yml"].encode()}
        # Whoever needs the files on disk gets them, the same ones.
        root = checkout.root
        assert checkout.written
        assert (root / "clusters/prod/b.yml").read_bytes() == TREE["clusters/prod/b.yml"].encode()


def test_files_from_objects_are_the_files_a_walk_of_the_written_tree_finds(
    make_workspace: WorkspaceFactory, tree_repo: str
) -> None:
    paths = ["clusters/prod", "clusters", "./clusters/staging/", "big/huge.yaml", "."]
    with make_workspace().checkout() as checkout:
        assert isinstance(checkout, GitCheckout)
        from_objects = checkout.files(paths)
        walked = walk_files(checkout.root, paths)
        assert [(f.path, f.size) for f in from_objects] == [(f.path, f.size) for f in walked]
        for file in from_objects:
            assert file.blob == blob_id((checkout.root / file.path).read_bytes())


def test_a_warm_scan_reads_no_file_and_a_size_limit_needs_no_read(
    make_workspace: WorkspaceFactory, tree_repo: str
) -> None:
    cache = ScanCache()
    reads: list[list[str]] = []
    for _cycle in range(2):
        with make_workspace().checkout() as checkout:

            def read(files: Sequence[str], checkout: Checkout = checkout) -> dict[str, bytes]:
                reads.append(list(files))
                return checkout.read(files)

            scan = scan_files(checkout.files(["clusters", "big"]), read, cache=cache, max_file_size=1000)
            cache.prune()
            assert [p.file for p in scan.problems] == ["big/huge.yaml"]
    assert "big/huge.yaml" not in reads[0]
    assert "clusters/prod/b.yml" in reads[0]  # read once, screened out, then known as holding nothing
    assert reads[1:] == []


def test_a_missing_path_is_reported_as_given(make_workspace: WorkspaceFactory, tree_repo: str) -> None:
    with make_workspace().checkout() as checkout, pytest.raises(MissingPathError) as caught:
        checkout.files(["clusters/nowhere"])
    assert caught.value.where == "clusters/nowhere"


def test_symbolic_links_are_judged_by_the_written_tree(
    make_workspace: WorkspaceFactory, git_server: GitServer, tree_repo: str
) -> None:
    add_links(
        git_server,
        tree_repo,
        {"clusters/prod/link.yaml": "app.yaml", "linked": "clusters/staging", "out": "/etc", "clusters/prod/l": "../"},
    )
    with make_workspace().checkout() as checkout:
        assert isinstance(checkout, GitCheckout)
        # Links inside a walked folder are skipped without writing anything.
        assert "clusters/prod/link.yaml" not in [f.path for f in checkout.files(["clusters/prod"])]
        assert not checkout.written
        # A linked folder on the way is followed as a walk of the working tree follows it.
        assert [f.path for f in checkout.files(["linked/s.yaml"])] == ["linked/s.yaml"]
        assert checkout.read(["linked/s.yaml"]) == {"linked/s.yaml": TREE["clusters/staging/s.yaml"].encode()}
        with pytest.raises(ManifestError, match="leads outside the repository"):
            checkout.files(["out"])
        for named in ("clusters/prod/link.yaml", "linked"):
            with pytest.raises(ManifestError, match="is a symbolic link"):
                checkout.files([named])


def test_commits_in_a_row_list_the_tree_once_and_still_refuse_to_write_through_a_link(
    make_workspace: WorkspaceFactory, git_server: GitServer, tree_repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_links(git_server, tree_repo, {"linked": "clusters/staging"})
    actions: list[str] = []
    run = GitCheckout._git

    def counting(self: GitCheckout, action: str, *args: str, **kwargs: object) -> str:
        actions.append(action)
        return run(self, action, *args, **kwargs)

    monkeypatch.setattr(GitCheckout, "_git", counting)
    with make_workspace().checkout() as checkout:
        for version in ("1.0.1", "1.0.2", "1.0.3"):
            checkout.commit({"clusters/prod/app.yaml": f"image: r.example.test/app:{version}\n"}, f"v{version}", BOT)
        # Each commit only writes regular files, so the links the first listing found are still all there are.
        assert actions.count("ls-tree") == 1
        with pytest.raises(GitError, match="symbolic link"):
            checkout.commit({"linked/s.yaml": "image: r.example.test/s:2\n"}, "through the link", BOT)
        assert not checkout.written
        assert checkout.read(["clusters/prod/app.yaml"]) == {
            "clusters/prod/app.yaml": b"image: r.example.test/app:1.0.3\n"
        }


def test_the_files_chosen_at_a_commit_are_remembered_and_a_damaged_record_is_only_slower(
    make_workspace: WorkspaceFactory, git_server: GitServer, tree_repo: str
) -> None:
    paths = ["clusters/prod", "clusters/staging/s.yaml"]
    with make_workspace().checkout() as checkout:
        assert isinstance(checkout, GitCheckout)
        listed = checkout.files(paths)
        memo = checkout._files_memo
    assert memo.is_file()
    with make_workspace().checkout() as checkout:
        assert isinstance(checkout, GitCheckout)
        assert checkout.files(paths) == listed
        assert checkout.read([]) == {}
        assert checkout._listing is None  # no tree was listed
        assert checkout.files(["clusters/prod"]) == listed[:-1]  # other paths: listed anew
        assert checkout._listing is not None
    for damage in (
        "{not json",
        '{"head": "%s", "paths": %s, "files": [["a", "b"]]}',
        '{"head": "%s", "paths": %s, "files": [["a", "b", "1"]]}',
    ):
        with make_workspace().checkout() as checkout:
            memo.write_text(damage.replace("%s", checkout.head, 1).replace("%s", json.dumps(paths), 1))
            assert checkout.files(paths) == listed
    git_server.commit_as_other(tree_repo, {"clusters/prod/new.yaml": "image: r.example.test/new:1\n"}, "a new file")
    with make_workspace().checkout() as checkout:
        assert "clusters/prod/new.yaml" in [f.path for f in checkout.files(paths)]
