"""Notifications the canary logic decides: a canary whose analysis stays inconclusive (too few requests to
judge) holds, and after `notifyAfterInconclusive` such cycles in a row asks for attention, once."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from gitbot.commands.runner import CycleRunner
from gitbot.logs import SecretMasker
from gitbot.ports import Notifier
from gitbot.reconcile import Deps, inspect_canary
from tests.scenarios_canary.conftest import POLICY, World, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import at

# 20 requests a second, 10 % to the canary: 600 canary requests in the 5-minute window, fewer than asked for.
TOO_FEW = 1000
# From minute 13 the canary has dwelt at 10 %; from minute 15 the data's traffic moves on to 60 %.
CYCLES = (13, 13.5, 14, 14.5)


@dataclass
class RecordingNotifier:
    """A `Notifier` that keeps what it was asked to send."""

    sent: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def notify(self, event: str, text: str, fields: Mapping[str, str]) -> None:
        self.sent.append((event, text, dict(fields)))


def starved_world(make_world: WorldFactory) -> World:
    return make_world("healthy", min_requests=TOO_FEW, notify_after=2)


def test_inconclusive_cycles_in_a_row_set_notify_once(make_world: WorldFactory) -> None:
    world = starved_world(make_world)
    world.cycle(1)
    head = world.log()[0].sha
    seen = []
    for moment in CYCLES:
        result = world.cycle(moment)
        assert result.deliveries == ()
        (outcome,) = result.canaries
        assert outcome.verdict == "inconclusive" and outcome.decision is not None
        seen.append((outcome.decision.action, outcome.decision.inconclusive_cycles, outcome.decision.notify))
    # The dwell ended at 13; from then on only the missing requests hold the canary.
    assert seen == [("hold", 1, False), ("hold", 2, True), ("hold", 3, False), ("hold", 4, False)]
    alert = world.plan(14.75).canaries[0].decision
    assert alert is not None and alert.inconclusive_cycles == 5
    analysis = inspect_canary(world.policy, world.deps, "podinfo").observation.analysis
    assert analysis is not None and analysis.verdict == "inconclusive"
    requests = analysis.checks[0]
    assert (requests.name, requests.verdict, requests.threshold) == ("requests", "inconclusive", ">= 1000 each")
    assert (requests.canary, requests.stable) == pytest.approx((600, 5400))
    assert world.log()[0].sha == head and weights(world.routes_text()) == at(10)


def test_a_restarted_bot_counts_inconclusive_cycles_afresh(make_world: WorldFactory) -> None:
    world = starved_world(make_world)
    world.cycle(1)
    world.cycle(13)
    world.restart()
    (outcome,) = world.cycle(13.5).canaries
    assert outcome.decision is not None
    assert (outcome.decision.inconclusive_cycles, outcome.decision.notify) == (1, False)
    (outcome,) = world.cycle(14).canaries
    assert outcome.decision is not None and outcome.decision.notify


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
        ("change-delivered", f"gitbot({POLICY}): podinfo canary 0% -> 10%")
    ]
    per_cycle = []
    for moment in CYCLES:
        world.clock.set(minute(moment))
        before = len(notifier.sent)
        summary = runner(world.policy)
        assert summary.outcome == "unchanged" and summary.canaries == {"podinfo": (10, "inconclusive")}
        # The daemon's cycle event says why the canary holds.
        assert summary.holds["podinfo"].startswith("analysis inconclusive: canary has 600 requests, needs 1000")
        per_cycle.append(notifier.sent[before:])
    assert [len(sent) for sent in per_cycle] == [0, 1, 0, 0]
    ((event, text, fields),) = per_cycle[1]
    assert event == "canary-attention"
    assert text == (
        f"gitbot policy {POLICY}: canary podinfo: analysis inconclusive: canary has 600 requests, needs 1000; "
        "analysis inconclusive 2 cycles in a row"
    )
    assert fields == {"policy": POLICY, "canary": "podinfo", "weight": "10%"}
