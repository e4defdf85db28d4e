"""The canary commands' reconcile functions at fixed moments of the data sets (the scenario clock):
`inspect_canary` (what `gitbot analyze` and `gitbot status` print), `promote` (a step by hand), and
`set_paused` (`gitbot pause` / `gitbot resume`, also after a person's revert of a step)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gitbot.config import Policy
from gitbot.cycle import Deps
from gitbot.errors import UsageError
from gitbot.manual import inspect_canary, mark_paused, promote, rollback
from tests.scenarios_canary.conftest import POLICY, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import action, at, trailers
from tests.support.gitserver import OTHER_NAME
from tests.support.killed import Killed, killed_after_push


def set_paused(policy: Policy, deps: Deps, name: str, *, paused: bool, why: str = "") -> str:
    """Record a pause or resume of canary `name` as a marker commit on the policy's branch (commit sha).

    When the canary already is as asked, nothing is recorded and the branch head is returned.
    """
    return mark_paused(policy, deps, name, paused=paused, why=why).ref


def test_inspect_reports_checks_values_thresholds_and_the_dwell_the_cycle_waits(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    world.cycle(1)
    world.clock.set(minute(12))
    report = inspect_canary(world.policy, world.deps, "podinfo")

    assert (report.name, report.route, report.weight, report.step) == (
        "podinfo",
        "VirtualService/test/podinfo",
        10,
        "step 1 of 3",
    )
    assert report.paused == ""
    analysis = report.observation.analysis
    assert analysis is not None and analysis.verdict == "pass" and analysis.summary == "all checks passed"
    assert (analysis.window_start, analysis.window_end) == (minute(7), minute(12))
    checks = {c.name: c for c in analysis.checks}
    assert list(checks) == ["requests", "success-rate", "latency-p99"]
    # 20 requests a second, 10 % to the canary, over 5 minutes.
    assert (checks["requests"].canary, checks["requests"].stable) == pytest.approx((600, 5400))
    assert checks["requests"].threshold == ">= 100 each"
    assert (checks["success-rate"].canary, checks["success-rate"].stable) == pytest.approx((100, 100))
    assert checks["success-rate"].threshold == ">= 99%, >= GA - 0.5pp"
    assert (checks["latency-p99"].canary, checks["latency-p99"].stable) == pytest.approx((175, 175))
    assert checks["latency-p99"].threshold == "<= 1.5x GA"
    assert all(c.verdict == "pass" for c in analysis.checks)
    assert report.observation.share == pytest.approx(10)
    # The dwell runs from when the traffic showed 10 % (minute 3), as the cycle counts it: 1 minute left.
    decision = world.plan(12).canaries[0].decision
    assert decision is not None and decision.dwell_remaining == timedelta(minutes=1)
    assert report.dwell_left == decision.dwell_remaining


def test_inspect_reports_a_failing_analysis_without_delivering(make_world: WorldFactory) -> None:
    world = make_world("slow")
    world.cycle(1)
    world.cycle(14)
    head = world.log()[0].sha
    world.clock.set(minute(24))
    report = inspect_canary(world.policy, world.deps, "podinfo")

    assert (report.weight, report.step) == (60, "step 2 of 3")
    analysis = report.observation.analysis
    assert analysis is not None and analysis.verdict == "fail" and analysis.summary == "p99 2.14x GA"
    latency = next(c for c in analysis.checks if c.name == "latency-p99")
    assert latency.verdict == "fail" and latency.threshold == "<= 1.5x GA"
    assert (latency.canary, latency.stable) == pytest.approx((375, 175))
    # Stepped at 14, the traffic showed 60 % from 16: the dwell had 2 minutes left when the canary failed.
    assert report.dwell_left == timedelta(minutes=2)
    assert world.log()[0].sha == head


def test_promote_by_hand_steps_next_or_to_a_weight_and_refuses_past_the_last(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    world.clock.set(minute(1))
    first = promote(world.policy, world.deps, "podinfo")
    assert first.outcome == "committed"
    assert first.subject == f"gitbot({POLICY}): podinfo canary 0% -> 10%"
    assert weights(world.routes_text()) == at(10)
    message = world.server.message(world.repo)
    assert f"Stepped by hand (gitbot promote podinfo --policy {POLICY})." in message
    assert ("Gitbot-Action", "canary-step") in trailers(message) and ("Gitbot-To", "10") in trailers(message)

    # A step by hand is a step: the cycle's dwell counts from it (traffic showed 10 % from minute 3).
    assert action(world.cycle(12)) == "hold"

    world.clock.set(minute(13))
    jump = promote(world.policy, world.deps, "podinfo", to=100)
    assert jump.subject == f"gitbot({POLICY}): podinfo canary 10% -> 100%"
    assert weights(world.routes_text()) == at(100)
    head = world.log()[0].sha

    # Run again (after a crash, say), a step by hand is not made twice; nor is a move to where it is.
    last = promote(world.policy, world.deps, "podinfo")
    assert (last.outcome, last.ref) == ("unchanged", head)
    assert last.subject == f"already promoted by {head[:7]}: {jump.subject}; its last step"
    same = promote(world.policy, world.deps, "podinfo", to=100)
    assert (same.outcome, same.subject) == ("unchanged", "canary podinfo is already at 100%; nothing to change")
    with pytest.raises(UsageError) as zero:
        promote(world.policy, world.deps, "podinfo", to=0)
    assert str(zero.value) == "--to 0 would not keep canary podinfo at 0%: the next cycle starts it again"
    assert zero.value.hint is not None and "gitbot rollback podinfo" in zero.value.hint
    with pytest.raises(UsageError) as down:
        promote(world.policy, world.deps, "podinfo", to=60)
    assert str(down.value) == "--to 60 would move canary podinfo down from 100%: promote only moves a canary up"
    assert down.value.hint is not None and "gitbot rollback podinfo" in down.value.hint
    assert "gitbot pause podinfo" in down.value.hint
    with pytest.raises(UsageError) as unknown:
        promote(world.policy, world.deps, "nginx")
    assert str(unknown.value) == f"policy {POLICY} has no canary named 'nginx' (canaries: podinfo)"
    assert world.log()[0].sha == head
    assert world.validate_every_version() == 3


def test_pause_holds_the_canary_and_resume_lets_it_step(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    world.cycle(1)
    world.clock.set(minute(5))
    paused = set_paused(world.policy, world.deps, "podinfo", paused=True, why="checking dashboards")
    assert world.log()[0].sha == paused
    message = world.server.message(world.repo)
    assert message.splitlines()[0] == f"gitbot({POLICY}): pause podinfo canary"
    assert "checking dashboards" in message and ("Gitbot-Action", "pause") in trailers(message)
    assert weights(world.routes_text()) == at(10), "a pause marker changes no file"

    # At 14 a healthy canary steps (test_progression); paused, it holds.
    held = world.cycle(14)
    assert action(held) == "hold" and held.deliveries == ()
    assert held.canaries[0].decision is not None
    # The reason given with the pause is shown wherever the pause is.
    assert held.canaries[0].decision.reason == "paused: paused by gitbot: checking dashboards"
    assert inspect_canary(world.policy, world.deps, "podinfo").paused == "paused by gitbot: checking dashboards"

    world.clock.set(minute(14.5))
    resumed = set_paused(world.policy, world.deps, "podinfo", paused=False)
    assert ("Gitbot-Action", "resume") in trailers(world.server.message(world.repo))
    assert inspect_canary(world.policy, world.deps, "podinfo").paused == ""
    stepped = world.cycle(15)
    assert [d.subject for d in stepped.deliveries] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    assert world.server.git(world.repo, "rev-parse", "main~1").strip() == resumed
    assert world.validate_every_version() == 5


def test_resume_after_a_persons_revert_of_a_step_continues_the_canary(make_world: WorldFactory) -> None:
    world = make_world("resumed")
    world.cycle(1)
    step10 = world.log()[0].sha
    world.cycle(14)
    step60 = world.log()[0]
    world.revert_as_person(step60, step10, date=minute(18))
    reason = f"a person ({OTHER_NAME}) reverted step {step60.sha[:7]}"
    held = world.cycle(19)
    assert action(held) == "hold" and held.canaries[0].decision is not None
    assert held.canaries[0].decision.reason == f"paused: {reason}"
    assert inspect_canary(world.policy, world.deps, "podinfo").paused == reason

    world.clock.set(minute(20))
    set_paused(world.policy, world.deps, "podinfo", paused=False)
    # Released: the canary goes on from 10 % once the traffic shows 10 % again (from minute 19) for a dwell.
    # The weights moved back at 18 (not at the 10 % step of minute 1): the traffic is still catching up,
    # which is not a step that failed to apply.
    waiting = world.cycle(22)
    assert action(waiting) == "wait-for-traffic" and waiting.deliveries == ()
    assert waiting.canaries[0].decision is not None and not waiting.canaries[0].decision.notify
    dwell = world.cycle(25)
    assert action(dwell) == "hold" and dwell.deliveries == ()
    assert dwell.canaries[0].decision is not None
    assert dwell.canaries[0].decision.reason == "dwell at 10%: 5m left"
    assert inspect_canary(world.policy, world.deps, "podinfo").dwell_left == timedelta(minutes=5)
    stepped = world.cycle(31)
    assert [d.subject for d in stepped.deliveries] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    assert weights(world.routes_text()) == at(60)
    assert action(world.cycle(33)) == "wait-for-traffic"
    assert world.validate_every_version() == 6


def test_rollback_after_a_pause_reverts_the_step_not_the_pause_marker(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    world.cycle(1)
    world.clock.set(minute(3))
    set_paused(world.policy, world.deps, "podinfo", paused=True)

    done = rollback(world.policy, world.deps, "podinfo")

    assert done.outcome == "committed" and done.subject == f"gitbot({POLICY}): roll back podinfo 10 -> 0"
    assert weights(world.routes_text()) == at(0)
    actions = [dict(trailers(c.body)).get("Gitbot-Action") for c in world.log()[:3]]
    assert actions == ["rollback", "pause", "canary-step"]


def test_rollback_of_a_step_killed_after_it_landed_and_run_again_keeps_the_older_step(
    make_world: WorldFactory,
) -> None:
    world = make_world("healthy")
    world.cycle(1)
    step10 = world.log()[0].sha
    world.cycle(14)
    assert weights(world.routes_text()) == at(60)
    world.clock.set(minute(15))

    with pytest.raises(Killed):
        rollback(world.policy, killed_after_push(world.deps), "podinfo")
    landed = world.log()[0]
    assert dict(trailers(landed.body)).get("Gitbot-Action") == "rollback"

    again = rollback(world.policy, world.deps, "podinfo")

    assert (again.outcome, again.ref) == ("unchanged", landed.sha)
    assert again.subject == f"already rolled back by {landed.sha[:7]}: gitbot({POLICY}): roll back podinfo 60 -> 10"
    assert world.log()[0].sha == landed.sha and weights(world.routes_text()) == at(10)
    assert step10 in [c.sha for c in world.log()]
    # On purpose, one step further: the 10 % step is reverted too.
    further = rollback(world.policy, world.deps, "podinfo", further=True)
    assert further.subject == f"gitbot({POLICY}): roll back podinfo 10 -> 0"
    assert weights(world.routes_text()) == at(0)


def test_rollback_after_the_cycle_rolled_the_canary_back_names_that_rollback(make_world: WorldFactory) -> None:
    world = make_world("slow")
    world.cycle(1)
    world.cycle(14)
    assert action(world.cycle(24)) == "rollback"
    cycle_rollback = world.log()[0]
    world.clock.set(minute(25))

    again = rollback(world.policy, world.deps, "podinfo")

    assert (again.outcome, again.ref) == ("unchanged", cycle_rollback.sha)
    assert again.subject == f"already rolled back by {cycle_rollback.sha[:7]}: {cycle_rollback.subject}"
    assert world.log()[0].sha == cycle_rollback.sha and weights(world.routes_text()) == at(0)


def test_promote_killed_after_its_step_landed_and_run_again_steps_once(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    world.cycle(1)
    world.clock.set(minute(5))

    with pytest.raises(Killed):
        promote(world.policy, killed_after_push(world.deps), "podinfo")
    step = world.log()[0]
    assert step.subject == f"gitbot({POLICY}): podinfo canary 10% -> 60%"

    again = promote(world.policy, world.deps, "podinfo")

    assert (again.outcome, again.ref) == ("unchanged", step.sha)
    assert again.subject == (
        f"already promoted by {step.sha[:7]}: {step.subject}; "
        "to step further, give the weight: gitbot promote podinfo --to W"
    )
    assert world.log()[0].sha == step.sha and weights(world.routes_text()) == at(60)
    # A second step on purpose names its weight.
    further = promote(world.policy, world.deps, "podinfo", to=100)
    assert further.subject == f"gitbot({POLICY}): podinfo canary 60% -> 100%"
    assert weights(world.routes_text()) == at(100)


def test_pause_and_resume_run_again_record_no_second_marker(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    world.cycle(1)
    world.clock.set(minute(5))
    head = world.log()[0].sha

    running = mark_paused(world.policy, world.deps, "podinfo", paused=False)
    assert (running.outcome, running.ref) == ("unchanged", head)
    assert running.subject == f"canary podinfo ({POLICY}) is not paused; nothing recorded"

    with pytest.raises(Killed):
        mark_paused(world.policy, killed_after_push(world.deps), "podinfo", paused=True)
    marker = world.log()[0].sha
    assert marker != head

    again = mark_paused(world.policy, world.deps, "podinfo", paused=True)

    assert (again.outcome, again.ref) == ("unchanged", marker)
    assert again.subject == f"canary podinfo ({POLICY}) is already paused (paused by gitbot); nothing recorded"
    assert world.log()[0].sha == marker

    world.clock.set(minute(6))
    resumed = mark_paused(world.policy, world.deps, "podinfo", paused=False)
    assert resumed.outcome == "committed" and resumed.subject == f"gitbot({POLICY}): resume podinfo canary"
    twice = mark_paused(world.policy, world.deps, "podinfo", paused=False)
    assert (twice.outcome, twice.ref) == ("unchanged", resumed.ref)
    actions = [dict(trailers(c.body)).get("Gitbot-Action") for c in world.log()[:3]]
    assert actions == ["resume", "pause", "canary-step"]
