"""A GitHub that drips its answer to a pull request's creation, in a whole cycle on the real git server and
registry: the delivery fails at the request's deadline with one line, nothing is left half-made (no pull
request without its branch, the environment branch untouched), and the next cycle opens each pull request once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gitbot.adapters.github import GitHubForge
from gitbot.cycle import run_cycle
from gitbot.errors import ForgeError
from tests.scenarios.conftest import POLICY, World, close_registries
from tests.support.drip import DripServer

pytestmark = pytest.mark.real


def test_a_dripping_create_fails_the_delivery_cleanly_and_the_next_cycle_opens_it_once(pr_world: World) -> None:
    world = pr_world
    assert world.github is not None
    seed = world.git.head(world.repo)
    dripping = True
    with DripServer(drips=lambda method, path: dripping and method == "POST", upstream=world.github.root_url) as drip:
        api = f"{drip.url}/api/v3"
        world.write_policy(api_url=api)
        policy = world.policy()
        deps = world.deps(policy)
        forge = GitHubForge(world.github.full_name, world.github.token, base_url=api, throttle=False, deadline=0.5)
        deps = replace(deps, forge=forge)
        try:
            with pytest.raises(ForgeError) as caught:
                run_cycle(policy, deps, deliver=True)
            assert caught.value.one_line() == (
                f"GitHub create pull request on {world.github.full_name} at {api}: "
                "no complete answer within 0.5 s; cut off"
            )
            assert drip.sent < 200
            assert world.github.list_pulls() == []
            assert world.git.head(world.repo) == seed
            # The branch went first; the pull request that would point at it was never made.
            assert set(world.git.branches(world.repo)) <= {"main", f"gitbot/{POLICY}/podinfo-ga"}

            dripping = False
            again = run_cycle(policy, deps, deliver=True)
        finally:
            forge.close()
            close_registries(deps)
    assert [d.outcome for d in again.deliveries] == ["opened", "opened"]
    heads = sorted(p.head for p in world.github.list_pulls())
    assert heads == [f"gitbot/{POLICY}/podinfo-canary", f"gitbot/{POLICY}/podinfo-ga"]
    assert world.git.head(world.repo) == seed
