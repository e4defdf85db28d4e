"""Notifications the canary logic decides: a canary whose analysis stays inconclusive (too few requests to
judge) holds, and once it has been inconclusive for longer than `notifyAfterInconclusive` since its step
landed asks for attention, in the first cycle past that time. Time and git decide it, no process memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from gitbot.commands.runner import CycleRunner
from gitbot.cycle import Deps
from gitbot.domain import Notice
from gitbot.logs import SecretMasker
from gitbot.manual import inspect_canary
from gitbot.ports import Notifier
from tests.scenarios_canary.conftest import World, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import at

# 20 requests a second, 10 % to the canary: 600 canary requests in the 5-minute window, fewer than asked for.
TOO_FEW = 1000
# Cycles every 5 minutes (the policy's schedule) after the step at minute 1; the dwell ended at 13.
CYCLES = (6, 11, 16, 21, 26)


@dataclass
class RecordingNotifier:
    """A `Notifier` that keeps what it was asked to send."""

    sent: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def notify(self, notice: Notice) -> bool:
        self.sent.append((notice.event, notice.title, dict(notice.facts)))
        return True


def starved_world(make_world: WorldFactory) -> World:
    # The older form, 3 cycles of the 5-minute schedule: 15 minutes.
    return make_world("steady", min_requests=TOO_FEW, notify_after=3)


def test_an_inconclusive_canary_notifies_in_the_first_cycle_past_notify_after(make_world: WorldFactory) -> None:
    world = starved_world(make_world)
    world.cycle(1)
    head = world.log()[0].sha
    seen = []
    for moment in CYCLES:
        result = world.cycle(moment)
        assert result.deliveries == ()
        (outcome,) = result.canaries
        assert outcome.verdict == "inconclusive" and outcome.decision is not None
        seen.append((outcome.decision.action, outcome.decision.inconclusive_for, outcome.decision.notify))
    assert seen == [
        ("hold", timedelta(minutes=5), False),
        ("hold", timedelta(minutes=10), False),
        ("hold", timedelta(minutes=15), False),
        ("hold", timedelta(minutes=20), True),
        ("hold", timedelta(minutes=25), False),
    ]
    alert = world.plan(21).canaries[0].decision
    assert alert is not None and alert.reason == (
        "analysis inconclusive: canary has 600 requests, needs 1000; analysis inconclusive for 20m since the step"
    )
    analysis = inspect_canary(world.policy, world.deps, "podinfo").observation.analysis
    assert analysis is not None and analysis.verdict == "inconclusive"
    requests = analysis.checks[0]
    assert (requests.name, requests.verdict, requests.threshold) == ("requests", "inconclusive", ">= 1000 each")
    assert (requests.canary, requests.stable) == pytest.approx((600, 5400))
    assert world.log()[0].sha == head and weights(world.routes_text()) == at(10)


def test_two_fresh_processes_reach_the_same_notify_decision(make_world: WorldFactory) -> None:
    world = starved_world(make_world)
    world.cycle(1)
    # One bot ran every cycle since the step; two others start only now, each with nothing but git.
    for moment in CYCLES[:3]:
        world.cycle(moment)
    decisions = [world.plan(21).canaries[0].decision]
    for _ in range(2):
        world.restart()
        decisions.append(world.plan(21).canaries[0].decision)
    assert decisions[0] is not None and decisions[0].notify
    assert decisions[1] == decisions[0] and decisions[2] == decisions[0]
    world.restart()
    (outcome,) = world.cycle(26).canaries
    assert outcome.decision is not None and not outcome.decision.notify


def test_the_runner_sends_canary_attention_after_the_inconclusive_streak(make_world: WorldFactory) -> None:
    world = starved_world(make_world)
    notifier = RecordingNotifier()

    def build(_policy: object, **_options: object) -> Deps:
        return world.deps

    def notifiers(_policy: object, _env: object, **_options: object) -> list[Notifier]:
        return [notifier]

    runner = CycleRunner(
        [world.policy], env={}, stop=threading.Event(), masker=SecretMasker(), build=build, make_notifiers=notifiers
    )
    world.clock.set(minute(1))
    assert runner(world.policy).outcome == "changed"
    assert [(event, text) for event, text, _ in notifier.sent] == [
        ("canary-step", "podinfo canary 0% -> 10%: committed to main")
    ]
    per_cycle = []
    for moment in CYCLES:
        world.clock.set(minute(moment))
        before = len(notifier.sent)
        summary = runner(world.policy)
        assert summary.outcome == "unchanged" and summary.canaries == {"podinfo": (10, "inconclusive")}
        # The daemon's cycle event says why the canary holds: its dwell until 13, then the missing requests.
        why = "dwell at 10%" if moment < 13 else "analysis inconclusive: canary has 600 requests, needs 1000"
        assert summary.holds["podinfo"].startswith(why)
        per_cycle.append(notifier.sent[before:])
    assert [len(sent) for sent in per_cycle] == [0, 0, 0, 1, 0]
    ((event, text, fields),) = per_cycle[3]
    assert event == "canary-inconclusive"
    assert text == "canary podinfo holds at 10%: analysis inconclusive for 20m"
    assert fields["Weight"] == "10%"
    assert fields["requests"] == (
        "inconclusive: canary 600, GA 5400 (needs >= 1000 each); canary has 600 requests, needs 1000"
    )
