"""A canary's safety does not depend on the registry: when its image's tag lookup fails, the canary is still
analysed and rolled back, and the failure is reported beside the rollback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from gitbot.commands.compose import build_registry
from gitbot.config import load_policy
from tests.scenarios_canary.conftest import CANARY_TAG, WorldFactory, weights
from tests.scenarios_canary.test_progression import action, at
from tests.support.registry import LoopbackServer, QuietHandler, serve


class GarbageHandler(QuietHandler):
    def do_GET(self) -> None:
        self.send_bytes(200, b"\x00\xffnot a tag list", {"Content-Type": "application/octet-stream"})


@pytest.fixture
def garbage() -> Iterator[LoopbackServer]:
    server = serve(GarbageHandler)
    yield server
    server.stop()


def test_a_failing_canary_is_rolled_back_while_its_registry_answers_garbage(
    make_world: WorldFactory, garbage: LoopbackServer
) -> None:
    world = make_world("errors")
    world.cycle(1)
    assert weights(world.routes_text()) == at(10)
    # From now on the canary's image policy lists its tags at a registry that answers garbage.
    assert world.policy_path is not None
    host = garbage.url.removeprefix("http://")
    text = world.policy_path.read_text(encoding="utf-8")
    canary_image = "    - name: podinfo-canary\n      repository: "
    start = text.index(canary_image) + len(canary_image)
    end = text.index("\n", start)
    world.policy_path.write_text(text[:start] + f"{host}/acme/podinfo" + text[end:], encoding="utf-8")
    world.policy = load_policy(world.policy_path)
    world.deps = replace(world.deps, registry=build_registry(world.policy, {}))

    failed = world.cycle(8)

    assert action(failed) == "rollback"
    (delivery,) = failed.deliveries
    assert delivery.outcome == "committed" and "roll back podinfo canary" in delivery.subject
    assert weights(world.routes_text()) == at(0)
    assert f"podinfo-canary={CANARY_TAG}" in world.server.message(world.repo)
    assert [(f.image, f.host) for f in failed.failures] == [("podinfo-canary", host)]
    assert "not JSON" in failed.failures[0].one_line()
