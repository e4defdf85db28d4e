"""Two replicas updating the same pull request at the same moment, on the real git server and the GitHub fake:
the branch push is conditional on the head the pull request had when each read it, so exactly one replica
replaces the branch and reports the pull request updated; the other finds it moved and reports it unchanged."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from gitbot.commands.compose import build_deps
from gitbot.cycle import CycleResult, Deps, run_cycle
from gitbot.ports import Checkout, Workspace
from tests.scenarios.conftest import POLICY, World, close_registries, image_yaml

pytestmark = pytest.mark.real

GA_BRANCH = f"gitbot/{POLICY}/podinfo-ga"


class _MeetingCheckout:
    """A checkout whose branch pushes wait until the other replica is about to push too."""

    def __init__(self, real: Checkout, meet: threading.Barrier) -> None:
        self._real = real
        self._meet = meet

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def push_branch(self, branch: str, sha: str, expected: str | None = None) -> None:
        self._meet.wait()
        self._real.push_branch(branch, sha, expected)


@dataclass(frozen=True)
class _MeetingWorkspace:
    real: Workspace
    meet: threading.Barrier

    @contextmanager
    def checkout(self) -> Iterator[Checkout]:
        with self.real.checkout() as checkout:
            yield _MeetingCheckout(checkout, self.meet)


def replica_deps(world: World, cache: str) -> Deps:
    env = {**world.env, "GITBOT_CACHE_DIR": str(world.tmp / cache)}
    return build_deps(world.policy(), need_forge=True, env=env, throttle=False)


def test_two_replicas_updating_one_pull_request_at_once_one_reports_updated(pr_world: World) -> None:
    world = pr_world
    assert world.github is not None
    world.write_policy(images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod"))
    first = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in first.deliveries] == ["opened"]
    opened_head = world.git.head(world.repo, GA_BRANCH)
    world.push_tags("0.1.3")

    meet = threading.Barrier(2, timeout=60)
    results: dict[str, CycleResult] = {}
    errors: dict[str, BaseException] = {}

    def cycle(name: str) -> None:
        deps = replica_deps(world, name)
        deps = replace(deps, workspace=_MeetingWorkspace(deps.workspace, meet))
        try:
            results[name] = run_cycle(world.policy(), deps, deliver=True)
        except BaseException as exc:
            errors[name] = exc
            meet.abort()
        finally:
            close_registries(deps)

    threads = [threading.Thread(target=cycle, args=(name,)) for name in ("replica-a", "replica-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    outcomes = sorted(d.outcome for result in results.values() for d in result.deliveries)
    assert outcomes == ["unchanged", "updated"]
    pulls = world.github.list_pulls("all")
    assert len(pulls) == 1 and pulls[0].state == "open"
    assert pulls[0].title == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.3"
    # One replica replaced the branch: one commit on main, the old head gone from it.
    head = world.git.head(world.repo, GA_BRANCH)
    assert head != opened_head
    assert world.git.git(world.repo, "rev-parse", f"{GA_BRANCH}~1").strip() == world.git.head(world.repo)
    assert world.workloads(GA_BRANCH) == world.expected_workloads(ga="0.1.3")
    updated = next(d for result in results.values() for d in result.deliveries if d.outcome == "updated")
    assert updated.ref.endswith(f"/pull/{pulls[0].number}")
