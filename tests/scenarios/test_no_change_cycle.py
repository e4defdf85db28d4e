"""A cycle that changes nothing works from git's objects: it writes no working tree, and with a warm scan
cache it reads no manifest at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from gitbot.reconcile import run_cycle
from tests.scenarios.conftest import World

pytestmark = pytest.mark.real


def tree_files(cache: Path) -> list[str]:
    """The files of working trees under the cache's work directories (git's `.git` pointer and locks aside)."""
    work = cache / "git" / "work"
    if not work.is_dir():
        return []
    return sorted(
        str(p.relative_to(work)) for p in work.rglob("*") if p.is_file() and p.name != ".git" and p.suffix != ".lock"
    )


class WatchingRegistry:
    """The real registry, but each lookup first notes the working-tree files that exist at that moment."""

    def __init__(self, inner: object, cache: Path) -> None:
        self.inner = inner
        self.cache = cache
        self.seen: list[list[str]] = []

    def list_tags(self, image: str) -> Sequence[str]:
        self.seen.append(tree_files(self.cache))
        return self.inner.list_tags(image)  # type: ignore[attr-defined, no-any-return]


def test_a_cycle_that_changes_nothing_writes_no_working_tree(world: World) -> None:
    cache = Path(world.env["GITBOT_CACHE_DIR"])
    deps = world.deps()
    first = WatchingRegistry(deps.registry, cache)
    delivered = run_cycle(world.policy(), replace(deps, registry=first), deliver=True)
    assert [d.outcome for d in delivered.deliveries] == ["committed", "committed"]

    again = WatchingRegistry(deps.registry, cache)
    deps = replace(deps, registry=again)
    nothing = run_cycle(world.policy(), deps, deliver=True)
    assert nothing.deliveries == ()
    assert again.seen and all(files == [] for files in again.seen)


def test_a_warm_cycle_reads_no_manifest_it_knows(world: World) -> None:
    deps = world.deps()
    run_cycle(world.policy(), deps, deliver=True)
    run_cycle(world.policy(), deps, deliver=True)  # scans the tree the first one committed
    assert deps.scan_cache is not None
    misses = deps.scan_cache.misses
    hits = deps.scan_cache.hits
    run_cycle(world.policy(), deps, deliver=True)
    assert deps.scan_cache.misses == misses
    assert deps.scan_cache.hits > hits
