"""A bot pull request keeps the policy's labels: one opened without them (the bot was stopped between
GitHub's creation of the pull request and the labels) gets them on the next cycle, at no cost once it has them."""

from __future__ import annotations

import pytest

from gitbot.cycle import run_cycle
from gitbot.errors import ForgeError
from tests.scenarios.conftest import World, image_yaml

pytestmark = pytest.mark.real


def test_a_pull_request_opened_without_its_labels_gets_them_on_the_next_cycle(pr_world: World) -> None:
    world = pr_world
    github = world.github
    assert github is not None
    world.write_policy(images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod"))
    github.fail_next("POST", r"/issues/[0-9]+/labels$", 502)

    with pytest.raises(ForgeError):
        run_cycle(world.policy(), world.deps(), deliver=True)
    [opened] = github.list_pulls()
    assert opened.labels == []

    again = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in again.deliveries] == ["unchanged"]
    assert [(p.number, p.labels) for p in github.list_pulls()] == [(opened.number, ["gitbot", "release"])]
    # Once it has them, a cycle only reads.
    sent = len(github.requests())
    third = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in third.deliveries] == ["unchanged"]
    assert {e.method for e in github.requests()[sent:]} == {"GET"}


def test_labels_a_person_added_are_kept_and_only_the_missing_one_is_added(pr_world: World) -> None:
    world = pr_world
    github = world.github
    assert github is not None
    world.write_policy(images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod"))
    run_cycle(world.policy(), world.deps(), deliver=True)
    [pull] = github.list_pulls()
    # A person relabels the pull request: one of the policy's labels goes, one of their own comes.
    pull.labels[:] = ["Release", "needs-review"]

    run_cycle(world.policy(), world.deps(), deliver=True)

    assert github.list_pulls()[0].labels == ["Release", "needs-review", "gitbot"]
    assert github.requests("POST", "/labels")[-1].request_body == ["gitbot"]
