"""Scanning from a listing (path -> blob id, size) finds the files a walk of the tree finds, in its order, and
the same targets and problems as `scan_tree`; the cache spares reading what it knows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from gitbot.errors import MissingPathError
from gitbot.manifests import Entry, ScanCache, blob_id, scan_files, scan_tree, select_files, walk_files

TREE = {
    "c/a.yaml": "image: r.example.test/a:1\n",
    "c/a/x.yaml": "image: r.example.test/ax:1\n",
    "c/a b/y.yaml": "image: r.example.test/ab:1\n",
    "c/ab/z.yml": "image: r.example.test/abz:1\n",
    "c/ab.yaml": "kind: ConfigMap\n",
    "c/.hidden/h.yaml": "image: r.example.test/h:1\n",
    "c/.h.yaml": "image: r.example.test/dot:1\n",
    "c/B/upper.yaml": "image: r.example.test/upper:1\n",
    "c/notes.txt": "image: r.example.test/txt:1\n",
    "c/deep/er/est.yaml": "image: r.example.test/deep:1\n" + "# pad\n" * 40,
    "top.yaml": "image: r.example.test/top:1\n",
}


def listing_of(root: Path) -> dict[str, Entry]:
    listing: dict[str, Entry] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            listing[rel] = Entry("dir")
        else:
            data = path.read_bytes()
            listing[rel] = Entry("file", blob_id(data), len(data))
    return listing


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel, text in TREE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("paths", [["c"], ["."], ["c/a", "c"], ["top.yaml", "c/ab"], ["./c/"]])
def test_a_listing_selects_the_files_a_walk_finds_in_its_order(tree: Path, paths: list[str]) -> None:
    selected = select_files(listing_of(tree), paths)
    assert selected is not None
    assert [(f.path, f.size) for f in selected] == [(f.path, f.size) for f in walk_files(tree, paths)]


def test_a_missing_path_or_one_through_a_link(tree: Path) -> None:
    listing = listing_of(tree)
    with pytest.raises(MissingPathError):
        select_files(listing, ["c/nothing"])
    listing["c/link"] = Entry("link", "0" * 40, 3)
    assert select_files(listing, ["c/link/x.yaml"]) is None
    assert select_files(listing, ["../elsewhere"]) is None


def test_scanning_a_listing_matches_scanning_the_tree_and_reads_only_what_the_cache_lacks(tree: Path) -> None:
    files = select_files(listing_of(tree), ["c", "top.yaml"])
    assert files is not None
    reads: list[list[str]] = []

    def read(paths: Sequence[str]) -> dict[str, bytes]:
        reads.append(list(paths))
        return {p: (tree / p).read_bytes() for p in paths}

    cache = ScanCache()
    first = scan_files(files, read, cache=cache, max_file_size=100)
    expected = scan_tree(tree, ["c", "top.yaml"], max_file_size=100)
    assert first == expected
    assert [p.file for p in first.problems] == ["c/deep/er/est.yaml"]
    assert "c/deep/er/est.yaml" not in reads[0]
    again = scan_files(files, read, cache=cache, max_file_size=100)
    assert again == expected
    assert len(reads) == 1
