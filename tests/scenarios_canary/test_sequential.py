"""Whole cycles with sequential checks only: the counts run from when the bot's step landed in git, a healthy
canary steps after its dwell, a failing one is rolled back, and a restarted bot reaches the same verdict."""

from __future__ import annotations

from tests.scenarios_canary.conftest import POLICY, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import action, at

SEQUENTIAL = ("{name: error-rate, test: sequential, alpha: 0.05}", "{name: latency, test: sequential, alpha: 0.05}")


def test_a_healthy_canary_passes_the_sequential_checks_and_steps(make_world: WorldFactory) -> None:
    world = make_world("healthy", checks=SEQUENTIAL)
    world.cycle(1)
    assert weights(world.routes_text()) == at(10)
    second = world.cycle(14)
    assert [d.subject for d in second.deliveries] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    message = world.server.message(world.repo)
    assert "| Sequential check | Canary | GA | Effect | e-value | p-value |" in message
    assert "| Check | Canary | GA | Threshold |" not in message
    # Counted from the step's commit at minute 1 (the bot's clock dates its commits).
    since = minute(1).strftime("%Y-%m-%d %H:%M:%SZ")
    rows = [line for line in message.splitlines() if line.startswith(("| error-rate |", "| latency |"))]
    assert len(rows) == 2 and all(row.endswith(f"| {since} |") and "| pass (" in row for row in rows)
    assert "**Verdict: pass**" in message


def test_a_canary_with_server_errors_is_rolled_back_on_the_evidence_since_its_step(make_world: WorldFactory) -> None:
    world = make_world("errors", checks=SEQUENTIAL)
    world.cycle(1)
    assert weights(world.routes_text()) == at(10)
    plan = world.plan(8)
    world.restart()
    again = world.plan(8)
    # Nothing but git and Prometheus decides: a fresh bot judges the same.
    assert [c.decision for c in plan.canaries] == [c.decision for c in again.canaries]
    failed = world.cycle(8)
    assert action(failed) == "rollback"
    (delivery,) = failed.deliveries
    assert delivery.subject.startswith(f"gitbot({POLICY}): roll back podinfo canary (error-rate 8% vs GA 0%; e = ")
    assert weights(world.routes_text()) == at(0)
