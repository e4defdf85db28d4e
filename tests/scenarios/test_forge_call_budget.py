"""What a cycle costs in GitHub API calls, counted by the GitHub fake: a cycle that changes nothing lists the
open pull requests once, and a new pull request costs a look for one a person closed, the create, and one
call to label it when the policy names labels. The repository itself is never fetched on its own."""

from __future__ import annotations

import pytest

from gitbot.cycle import run_cycle
from tests.scenarios.conftest import World, image_yaml

pytestmark = pytest.mark.real


def one_image_policy(world: World, *, labels: bool) -> None:
    world.write_policy(images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod"))
    if not labels:
        text = world.policy_path.read_text(encoding="utf-8").replace(", labels: [gitbot, release]", "")
        world.policy_path.write_text(text, encoding="utf-8")


def calls(world: World) -> list[str]:
    assert world.github is not None
    return [f"{e.method} {e.path.split('/cluster-config', 1)[-1]}" for e in world.github.requests()]


def test_a_new_pull_request_costs_three_calls_and_a_cycle_that_changes_nothing_one(pr_world: World) -> None:
    world = pr_world
    one_image_policy(world, labels=False)
    deps = world.deps()

    result = run_cycle(world.policy(), deps, deliver=True)
    assert [d.outcome for d in result.deliveries] == ["opened"]
    assert calls(world) == ["GET /pulls", "GET /pulls", "POST /pulls"]

    before = len(calls(world))
    again = run_cycle(world.policy(), deps, deliver=True)
    assert [d.outcome for d in again.deliveries] == ["unchanged"]
    assert calls(world)[before:] == ["GET /pulls"]


def test_labels_cost_one_more_call(pr_world: World) -> None:
    world = pr_world
    one_image_policy(world, labels=True)
    result = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in result.deliveries] == ["opened"]
    assert calls(world) == ["GET /pulls", "GET /pulls", "POST /pulls", "POST /issues/1/labels"]
