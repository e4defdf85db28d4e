"""Spreading a batch of pure, CPU-bound work (parsing and editing thousands of manifests) over processes.

Owns the threshold past which a batch is worth other processes, the pool (forked, and only from a process
running no other thread, so no lock another thread holds is copied into a child), and handing back each
item's result, or the `GitbotError` it raised, in the items' order: the caller sees what a loop would have
seen. Below the threshold, or where forking is not safe, the items are worked through in this process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from gitbot.errors import GitbotError

_T = TypeVar("_T")
_R = TypeVar("_R")

# Below this many items a pool's start (a fork and a pickle of each item and result) costs more than it saves.
MIN_ITEMS = 500


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _caught(call: tuple[Callable[[_T], _R], _T]) -> _R | GitbotError:
    function, item = call
    try:
        return function(item)
    except GitbotError as exc:
        return exc


def map_ordered(
    function: Callable[[_T], _R], items: Sequence[_T], *, minimum: int = MIN_ITEMS
) -> list[_R | GitbotError]:
    """`function` of each item, in order; an item whose call raised a GitbotError gives that error instead.

    `function` must be a module-level function (it is pickled by name) without side effects.
    """
    workers = min(_usable_cpus(), 8)
    if len(items) < minimum or workers < 2 or threading.active_count() > 1:
        return [_caught((function, item)) for item in items]
    # Imported here: most runs (a warm cycle scans nothing) never start a pool, and these cost ~10 ms to load.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if "fork" not in multiprocessing.get_all_start_methods():
        return [_caught((function, item)) for item in items]
    chunk = max(1, len(items) // (workers * 8))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_caught, [(function, item) for item in items], chunksize=chunk))
    except (OSError, BrokenProcessPool):
        # No process to be had (a limit on processes or memory) or one was killed: the work is still done, here.
        return [_caught((function, item)) for item in items]
