"""A cycle that changes nothing works from git's objects: it writes no working tree, with a warm scan cache it
reads no manifest it knows, and the git commands it runs do not grow with the number of manifests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from gitbot.cycle import run_cycle
from tests.scenarios.conftest import PATH, World, WorldFactory

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


def git_commands(trace: Path) -> list[str]:
    """The git commands the cycle started (from git's own trace), as `git <subcommand>`; server side left out."""
    commands = []
    for line in trace.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") == "start" and event["argv"][0] == "git" and len(event["argv"]) > 1:
            commands.append(f"git {event['argv'][1]}")
    return commands


def test_a_warm_cycle_that_changes_nothing_runs_as_many_git_commands_for_ten_files_as_for_two_hundred(
    make_world: WorldFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    counts = {}
    for size in (10, 200):
        extra = {f"{PATH}/more/app{i:03d}.yaml": f"image: r.example.test/acme/more{i}:1.0.0\n" for i in range(size)}
        world = make_world(extra_files=extra)
        deps = world.deps()
        run_cycle(world.policy(), deps, deliver=True)
        run_cycle(world.policy(), deps, deliver=True)
        trace = tmp_path / f"trace-{size}.json"
        monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
        nothing = run_cycle(world.policy(), deps, deliver=True)
        monkeypatch.delenv("GIT_TRACE2_EVENT")
        assert nothing.deliveries == ()
        counts[size] = git_commands(trace)
    assert counts[10] == counts[200]
    # No listing of the tree (the files chosen at this commit are remembered) and no file read: the scan cache
    # knows every blob and nothing is edited; nothing written out.
    assert counts[200].count("git ls-tree") == 0, counts[200]
    assert counts[200].count("git cat-file") <= 1, counts[200]  # GitPython's own object lookup
    assert not {"git reset", "git checkout", "git read-tree"} & set(counts[200])
