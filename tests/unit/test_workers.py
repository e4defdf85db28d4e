"""Work spread over processes gives what a loop in this process gives: the same results in the same order,
the same errors for the same items, and a scan (and its cache) the same as one made file by file."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import pytest

from gitbot import workers
from gitbot.domain import Assignment
from gitbot.edits import EditJob, apply_many, apply_steps
from gitbot.errors import EditError, GitbotError
from gitbot.manifests import Scan, ScanCache, blob_id, scan_files
from gitbot.ports import TreeFile


def square_or_refuse(n: int) -> tuple[int, int]:
    if n % 7 == 3:
        raise EditError(f"refused {n}", where=f"item-{n}", hint="pick another")
    return n * n, os.getpid()


def test_items_give_their_results_and_errors_in_order_from_other_processes() -> None:
    items = list(range(60))
    out = workers.map_ordered(square_or_refuse, items, minimum=10)
    assert len(out) == len(items)
    pids = set()
    for n, got in zip(items, out, strict=True):
        if n % 7 == 3:
            assert isinstance(got, EditError)
            assert (got.one_line(), got.hint) == (f"item-{n}: refused {n}", "pick another")
        else:
            assert not isinstance(got, GitbotError)
            assert got[0] == n * n
            pids.add(got[1])
    if len(os.sched_getaffinity(0)) > 1 and threading.active_count() == 1:
        # (A process running other threads is not forked: then the items ran here, in the same order.)
        assert os.getpid() not in pids, "the items ran in worker processes"


def test_a_small_batch_stays_in_this_process() -> None:
    out = workers.map_ordered(square_or_refuse, [1, 2], minimum=10)
    assert [r[1] for r in out if not isinstance(r, GitbotError)] == [os.getpid(), os.getpid()]


def manifest(i: int) -> bytes:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n"
        f'        - name: app\n          image: r.example.test/app:1.{i} # {{"$imagepolicy": "ns:app"}}\n'
    ).encode()


def scan(blobs: dict[str, bytes], cache: ScanCache) -> object:
    files = [TreeFile(path, blob_id(data), len(data)) for path, data in blobs.items()]

    def read(paths: Sequence[str]) -> dict[str, bytes]:
        return {p: blobs[p] for p in paths}

    return scan_files(files, read, cache=cache)


def test_a_scan_spread_over_processes_is_the_scan_made_file_by_file(monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = {f"apps/d{i:03d}.yaml": manifest(i) for i in range(40)}
    blobs["apps/plain.yaml"] = b"kind: ConfigMap\n"
    one_by_one = ScanCache()
    expected = scan(blobs, one_by_one)
    monkeypatch.setattr(workers, "MIN_ITEMS", 5)
    side_by_side = ScanCache()
    assert scan(blobs, side_by_side) == expected
    # The cache learnt the same: a second scan reads nothing and finds the same.
    assert side_by_side._entries == one_by_one._entries
    misses = side_by_side.misses
    assert scan(blobs, side_by_side) == expected and side_by_side.misses == misses


def test_a_file_that_does_not_parse_is_the_same_problem_in_a_spread_scan_as_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blobs = {f"apps/d{i:03d}.yaml": manifest(i) for i in range(20)}
    blobs["apps/d007.yaml"] = b"image: a\nimage: b\n"
    one_by_one_cache = ScanCache()
    one_by_one = scan(blobs, one_by_one_cache)
    monkeypatch.setattr(workers, "MIN_ITEMS", 5)
    side_by_side_cache = ScanCache()
    side_by_side = scan(blobs, side_by_side_cache)
    assert side_by_side == one_by_one
    assert isinstance(one_by_one, Scan)
    assert [(p.file, p.line, p.why) for p in one_by_one.problems] == [
        ("apps/d007.yaml", 2, "duplicate key 'image'; not scanned")
    ]
    assert side_by_side_cache._failures == one_by_one_cache._failures


def test_edits_spread_over_processes_are_the_edits_made_file_by_file(monkeypatch: pytest.MonkeyPatch) -> None:
    pointer = "/spec/template/spec/containers/0/image"
    jobs: list[EditJob] = [
        (manifest(i).decode(), [[Assignment(0, pointer, f"r.example.test/app:2.{i}")], []], f"d{i}.yaml", True)
        for i in range(30)
    ]
    # The texts of the steps that change the file; None for the step that does not.
    expected = [[apply_steps(text, steps, source=source, chain=chain)[0], None] for text, steps, source, chain in jobs]
    assert apply_many(jobs) == expected
    monkeypatch.setattr(workers, "MIN_ITEMS", 5)
    assert apply_many(jobs) == expected
    # The first failing file in order is the error, as in a loop.
    jobs[12] = (jobs[12][0], [[Assignment(0, "/spec/nothing", "x")]], "d12.yaml", True)
    jobs[20] = (jobs[20][0], [[Assignment(3, pointer, "x")]], "d20.yaml", True)
    with pytest.raises(EditError, match=r"d12\.yaml 0:/spec/nothing: no value at this pointer"):
        apply_many(jobs)


def exit_in_a_worker(n: int) -> int:
    if os.getpid() != PARENT and n == 7:
        os._exit(3)  # a worker killed (out of memory, say) in the middle of the batch
    return n + 1


PARENT = os.getpid()


def test_a_worker_that_dies_leaves_the_work_to_this_process() -> None:
    assert workers.map_ordered(exit_in_a_worker, list(range(20)), minimum=5) == list(range(1, 21))
