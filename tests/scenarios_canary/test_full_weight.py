"""A canary at 100 percent is judged against GA's figures from before the step to 100 percent (GA takes no
traffic then): twice GA's p99 is rolled back, an equal canary completes, no GA figures hold it."""

from __future__ import annotations

from gitbot.manual import inspect_canary
from tests.scenarios_canary.conftest import POLICY, WorldFactory, weights
from tests.scenarios_canary.test_progression import action, at


def test_twice_gas_p99_at_100_percent_is_rolled_back(make_world: WorldFactory) -> None:
    world = make_world("full-slow")
    for moment in (1, 14, 27):
        world.cycle(moment)
    assert weights(world.routes_text()) == at(100)

    failed = world.cycle(36)
    (delivery,) = failed.deliveries
    assert delivery.subject == f"gitbot({POLICY}): roll back podinfo canary (p99 2.14x GA before 100%)"
    message = world.server.message(world.repo)
    assert "| latency-p99 | 375.0 ms | 175.0 ms | <= 1.5x GA | fail (2.14x GA before 100%) |" in message
    assert "GA figures: 5m to 2026-01-05 12:27:00Z, before the step to 100%" in message
    assert weights(world.routes_text()) == at(0)


def test_a_canary_as_fast_as_ga_was_completes_at_100_percent(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    for moment in (1, 14, 27):
        world.cycle(moment)
    done = world.cycle(40)
    assert action(done) == "complete"
    (outcome,) = done.canaries
    assert outcome.verdict == "pass"
    analysis = inspect_canary(world.policy, world.deps, "podinfo").observation.analysis
    assert analysis is not None
    assert [(c.name, c.verdict) for c in analysis.checks] == [
        ("requests", "pass"),
        ("success-rate", "pass"),
        ("latency-p99", "pass"),
    ]


def test_at_100_percent_without_a_step_in_history_the_canary_holds_inconclusive(make_world: WorldFactory) -> None:
    # A person set 100 % by hand: history has no step to 100 % before which GA's figures could be read.
    world = make_world("healthy", canary_weight=100)
    held = world.cycle(40)
    assert action(held) == "hold" and held.deliveries == ()
    (outcome,) = held.canaries
    assert outcome.verdict == "inconclusive"
    assert outcome.held is not None
    assert outcome.held == (
        "analysis inconclusive: success-rate no GA figures "
        "(GA takes no traffic at 100% and history has no step to 100% to look before)"
    )
