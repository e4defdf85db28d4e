"""Whole cycles with sequential checks at 100 percent, where GA takes no traffic: the canary's counts since the
step to 100 percent are compared with GA's from the step before it (both landings read from git). The shipped
production checks complete a healthy canary and promote it; a canary whose errors double at 100 % is rolled back.
"""

from __future__ import annotations

from pathlib import Path

from gitbot.config import load_policy
from gitbot.manual import inspect_canary
from tests.scenarios_canary.conftest import APPS_FILE, POLICY, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import action, at

REPO = Path(__file__).resolve().parents[2]


def production_checks() -> tuple[str, ...]:
    """The checks of the shipped production policy, as flow mappings for the scenario's policy."""
    policy = load_policy(REPO / "policies" / "production.yaml")
    checks = policy.spec.canaries[0].analysis.checks
    assert {check.spec().name for check in checks} >= {"error-rate", "latency"}
    text = (REPO / "policies" / "production.yaml").read_text()
    lines = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- {name: ")]
    assert len(lines) == len(checks)
    return tuple(lines)


def test_the_production_checks_complete_a_healthy_canary_at_100_percent_and_promote_it(
    make_world: WorldFactory,
) -> None:
    world = make_world("seq-full", checks=production_checks(), on_complete="promote\n      promoteTo: podinfo-ga")
    for moment in (1, 14, 27):
        world.cycle(moment)
    assert weights(world.routes_text()) == at(100)

    world.clock.set(minute(36))
    analysis = inspect_canary(world.policy, world.deps, "podinfo").observation.analysis
    assert analysis is not None
    sequential = [(c.name, c.verdict) for c in analysis.checks if c.sequential]
    assert sequential == [("error-rate", "pass"), ("latency", "pass")], analysis

    promoted = world.cycle(40)
    assert action(promoted) == "promote"
    assert [d.subject for d in promoted.deliveries] == [f"gitbot({POLICY}): promote podinfo canary 0.2.1 to podinfo-ga"]
    assert weights(world.routes_text()) == at(0)
    assert world.server.read_file(world.repo, APPS_FILE).count(f"{world.image_repo}:0.2.1") == 2
    # The evidence says GA's side is from before the step to 100 %: from the step to 60 % (minute 14) to it (27).
    message = world.server.message(world.repo)
    rows = [line for line in message.splitlines() if line.startswith(("| error-rate |", "| latency |"))]
    period = "| 2026-01-05 12:27:00Z; GA 2026-01-05 12:14:00Z to 2026-01-05 12:27:00Z, before 100% |"
    assert len(rows) == 2 and all(row.endswith(period) and " before 100% |" in row for row in rows), rows


def test_a_canary_whose_errors_double_at_100_percent_is_rolled_back(make_world: WorldFactory) -> None:
    checks = ("{name: success-rate, min: 95}", "{name: error-rate, test: sequential, alpha: 0.05}")
    world = make_world("seq-full-errors", checks=checks, on_complete="promote\n      promoteTo: podinfo-ga")
    for moment in (1, 14, 27):
        world.cycle(moment)
    assert weights(world.routes_text()) == at(100)

    # Two minutes of 1% errors are not yet evidence enough: nothing is delivered.
    early = world.cycle(30)
    assert early.deliveries == ()
    (outcome,) = early.canaries
    assert outcome.verdict == "pass"

    failed = world.cycle(34)
    assert action(failed) == "rollback"
    (delivery,) = failed.deliveries
    assert (
        delivery.subject.startswith(f"gitbot({POLICY}): roll back podinfo canary (error-rate 0.9")
        and " vs GA 0.5% before 100%; e = " in delivery.subject
    )
    assert weights(world.routes_text()) == at(0)
