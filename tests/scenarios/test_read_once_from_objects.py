"""Over real git, where manifests are read from git's objects rather than opened: a cycle asks for each
manifest's bytes once, whether the scan cache knows the file or not, and the planner edits what was read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import pytest

from gitbot.adapters.gitrepo import GitCheckout
from gitbot.cycle import run_cycle
from tests.scenarios.conftest import PATH, WORKLOADS, World, WorldFactory

pytestmark = pytest.mark.real


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every path a cycle's checkout is asked to read, counted."""
    counts: Counter[str] = Counter()
    read = GitCheckout.read

    def counting(self: GitCheckout, files: Sequence[str]) -> dict[str, bytes]:
        counts.update(files)
        return read(self, files)

    monkeypatch.setattr(GitCheckout, "read", counting)
    return counts


def test_a_cold_cycle_that_commits_two_changes_reads_each_manifest_once(world: World, reads: Counter[str]) -> None:
    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["committed", "committed"]
    assert reads[WORKLOADS] == 1
    assert max(reads.values()) == 1
    assert world.workloads() == world.expected_workloads(ga="0.1.2", canary="0.2.1")


def test_a_warm_cycle_reads_only_the_files_it_scans_or_edits_and_each_once(
    make_world: WorldFactory, reads: Counter[str]
) -> None:
    more = [f"{PATH}/more/app{i}.yaml" for i in range(5)]
    extra = {path: f"image: r.example.test/acme/more{i}:1.0.0\n" for i, path in enumerate(more)}
    extra[f"{PATH}/more/plain.yaml"] = "kind: ConfigMap\n"
    world = make_world(image_repo="acme/read-once", extra_files=extra)
    deps = world.deps()
    run_cycle(world.policy(), deps, deliver=True)
    world.push_tags("0.1.3")
    reads.clear()

    # A registry client of its own sees the new tag at once; the scan cache is the one the first cycle filled.
    result = run_cycle(world.policy(), replace(world.deps(), scan_cache=deps.scan_cache), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["committed"]
    # The first cycle's commit changed the workloads file, so the scan reads it; the cache knows the others,
    # and the edit is in the file the scan read, so no other text is needed (the routes' and the other
    # images' files hold targets, but nothing changes there). Nothing is read twice.
    assert reads == Counter({WORKLOADS: 1})
    assert "0.1.3" in world.workloads()
