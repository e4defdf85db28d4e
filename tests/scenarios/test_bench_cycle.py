"""The whole-cycle benchmark's own machinery at a tiny size, so that it cannot rot unnoticed: its repository
generator, its policy and its `gitbot` runs against the real git server and `docker-registry`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bench_cycle, cycle_repo
from tests.support.gitserver import GitServer
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.real

SIZE = 20


def test_a_cold_once_commits_every_update_of_a_generated_repository(
    git_server: GitServer, registry: RunningRegistry, tmp_path: Path
) -> None:
    cycle_repo.push_bench_tags(registry)
    generated = cycle_repo.generate(tmp_path / "tree", SIZE, registry.host)
    assert generated.references == SIZE * 3 // 2
    name = git_server.unique_name("bench")
    url = cycle_repo.load_repository(git_server, name, tmp_path / "tree")
    assert cycle_repo.count_at(git_server, name, cycle_repo.CURRENT) == generated.references
    policies = tmp_path / "policies"
    cycle_repo.write_policy(policies, url=url, username=git_server.username, registry_host=registry.host)
    env = cycle_repo.gitbot_env(git_server, tmp_path / "home")

    plan = bench_cycle.gitbot("plan", policies, env, registry)
    assert plan.failed is None
    assert sum(bench_cycle.planned_updates(plan.stdout).values()) == generated.updatable
    assert plan.requests >= cycle_repo.IMAGES  # one tag list per image, at least

    once = bench_cycle.gitbot("once", policies, env, registry)
    assert once.failed is None, once.stderr
    committed = [line for line in once.stdout.splitlines() if line.startswith("committed")]
    assert len(committed) == cycle_repo.UPDATED_IMAGES
    assert cycle_repo.count_at(git_server, name, cycle_repo.NEWER) == generated.updatable
    assert cycle_repo.count_at(git_server, name, cycle_repo.CURRENT) == generated.references - generated.updatable
    assert once.rss_mb > 0

    # The benchmark's stand-in for a failed `once` (a person's update) is byte for byte what gitbot wrote.
    delivered = git_server.git(name, "rev-parse", "main^{tree}").strip()
    cycle_repo.generate(tmp_path / "updated", SIZE, registry.host, updated=True)
    by_hand = cycle_repo.commit_tree(git_server, name, tmp_path / "updated", "by hand", ("Other", "o@example.test"))
    assert git_server.git(name, "rev-parse", f"{by_hand}^{{tree}}").strip() == delivered


def test_a_failing_stage_is_reported_as_a_figure(
    git_server: GitServer, registry: RunningRegistry, tmp_path: Path
) -> None:
    cycle_repo.generate(tmp_path / "tree", 4, registry.host)
    name = git_server.unique_name("bench")
    url = cycle_repo.load_repository(git_server, name, tmp_path / "tree")
    policies = tmp_path / "policies"
    cycle_repo.write_policy(policies, url=url, username=git_server.username, registry_host=registry.host)
    env = {**cycle_repo.gitbot_env(git_server, tmp_path / "home"), "GITBOT_GIT_TOKEN": "not-the-token"}
    result = bench_cycle.SizeResult(4)
    run = bench_cycle.gitbot("once", policies, env, registry)
    assert not bench_cycle._record(result, "cold once", run, 4)
    figure = result.figures["cold once"]
    assert figure.startswith("failed: gitbot: error: ") and "credentials" in figure
    assert "\n" not in figure and "cold once" not in result.seconds


def _run(seconds: float, returncode: int = 0) -> bench_cycle.Run:
    return bench_cycle.Run(seconds, 50.0, 10, returncode, "", "gitbot: error: refused" if returncode else "")


def test_a_repeated_stage_is_figured_by_its_median_run_with_its_spread() -> None:
    runs = [_run(1.4), _run(0.9), _run(1.0)]
    assert bench_cycle.median_run(runs) is runs[2]
    result = bench_cycle.SizeResult(1_000)
    assert bench_cycle._record(result, "cold once", bench_cycle.median_run(runs), 1_000, runs)
    assert result.seconds["cold once"] == 1.0
    assert result.figures["cold once"].endswith("(median of 3: 0.90-1.40 s)")
    # One failed run fails the stage: a figure is never the median of what happened to work.
    failed = [_run(0.9), _run(0.2, returncode=1), _run(1.0)]
    assert bench_cycle.median_run(failed) is failed[1]
