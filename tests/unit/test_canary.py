"""The canary state machine: a table of situations, then invariants over generated ones."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitbot.canary import CanaryDecision, CanaryPolicy, CanaryState, decide
from gitbot.errors import ManifestError
from tests.unit.test_config import CANARY, load_refusal

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
POLICY = CanaryPolicy(
    steps=(10, 60, 100), interval=timedelta(minutes=10), apply_timeout=timedelta(minutes=15), cycle=timedelta(minutes=5)
)
LONG_AGO = NOW - timedelta(minutes=30)


def state(**overrides: Any) -> CanaryState:
    """A canary at 10% that stepped long ago, traffic matching, analysis passing."""
    values: dict[str, Any] = {
        "weight": 10,
        "now": NOW,
        "last_step_at": LONG_AGO,
        "observed_share": 10.2,
        "verdict": "pass",
    }
    values.update(overrides)
    return CanaryState(**values)


CASES: list[tuple[str, CanaryPolicy, CanaryState, str, int | None, bool]] = [
    # label, policy, state, action, to_weight, notify
    ("pass after dwell steps to the next weight", POLICY, state(), "step", 60, False),
    ("from 60 to 100", POLICY, state(weight=60, observed_share=59.0), "step", 100, False),
    ("dwell not over holds", POLICY, state(last_step_at=NOW - timedelta(minutes=4)), "hold", None, False),
    (
        "new canary tag restarts the dwell",
        POLICY,
        state(tag_changed_at=NOW - timedelta(minutes=2)),
        "hold",
        None,
        False,
    ),
    (
        "applied late restarts the dwell",
        POLICY,
        state(applied_at=NOW - timedelta(minutes=9)),
        "hold",
        None,
        False,
    ),
    ("inconclusive holds", POLICY, state(verdict="inconclusive"), "hold", None, False),
    ("no analysis holds", POLICY, state(verdict=None), "hold", None, False),
    ("fail rolls back", POLICY, state(verdict="fail"), "rollback", 0, True),
    ("fail during dwell rolls back", POLICY, state(verdict="fail", last_step_at=NOW), "rollback", 0, True),
    (
        "fail before traffic shifted rolls back",
        POLICY,
        state(verdict="fail", observed_share=0.0),
        "rollback",
        0,
        True,
    ),
    (
        "fail with onFailure hold holds",
        replace(POLICY, on_failure="hold"),
        state(verdict="fail"),
        "hold",
        None,
        True,
    ),
    ("paused holds even on pass", POLICY, state(paused=True), "hold", None, False),
    ("paused holds on fail but tells", POLICY, state(paused=True, verdict="fail"), "hold", None, True),
    (
        "share not shifted yet waits",
        POLICY,
        state(observed_share=0.0, last_step_at=NOW - timedelta(minutes=3)),
        "wait-for-traffic",
        None,
        False,
    ),
    ("share never shifted: not applied", POLICY, state(observed_share=0.0), "not-applied", None, True),
    ("share within tolerance counts", POLICY, state(observed_share=14.9), "step", 60, False),
    (
        "share just outside tolerance waits",
        POLICY,
        state(observed_share=15.1, last_step_at=NOW - timedelta(minutes=3)),
        "wait-for-traffic",
        None,
        False,
    ),
    (
        "share unknown waits, never not-applied",
        POLICY,
        state(observed_share=None),
        "wait-for-traffic",
        None,
        False,
    ),
    (
        "weight 0 starts at the first step",
        POLICY,
        state(weight=0, observed_share=None, verdict=None),
        "step",
        10,
        False,
    ),
    (
        "weight 0 with nothing to roll out holds",
        POLICY,
        state(weight=0, canary_differs=False),
        "hold",
        None,
        False,
    ),
    ("rolled back holds until a newer tag", POLICY, state(weight=0, rolled_back=True), "hold", None, False),
    (
        "newer tag after rollback starts again",
        POLICY,
        state(weight=0, rolled_back=True, newer_tag=True, verdict=None),
        "step",
        10,
        False,
    ),
    ("at 100 with pass completes", POLICY, state(weight=100, observed_share=100.0), "complete", None, False),
    (
        "at 100 with promote promotes",
        replace(POLICY, on_complete="promote"),
        state(weight=100, observed_share=100.0),
        "promote",
        None,
        False,
    ),
    (
        "promote needs a pass",
        replace(POLICY, on_complete="promote"),
        state(weight=100, observed_share=100.0, verdict="inconclusive"),
        "hold",
        None,
        False,
    ),
    (
        "already promoted completes",
        replace(POLICY, on_complete="promote"),
        state(weight=100, observed_share=100.0, canary_differs=False),
        "complete",
        None,
        False,
    ),
    (
        "at 100 dwell first",
        POLICY,
        state(weight=100, observed_share=100.0, last_step_at=NOW),
        "hold",
        None,
        False,
    ),
    (
        "a hand-set weight between steps goes to the next step",
        POLICY,
        state(weight=30, observed_share=30.0),
        "step",
        60,
        False,
    ),
    ("unknown last step time counts as dwelt", POLICY, state(last_step_at=None), "step", 60, False),
    (
        "inconclusive within notify_after since the step does not notify",
        replace(POLICY, notify_after=timedelta(minutes=30), cycle=timedelta(minutes=5)),
        state(verdict="inconclusive", last_step_at=NOW - timedelta(minutes=30)),
        "hold",
        None,
        False,
    ),
    (
        "the first cycle past notify_after since the step notifies",
        replace(POLICY, notify_after=timedelta(minutes=30), cycle=timedelta(minutes=5)),
        state(verdict="inconclusive", last_step_at=NOW - timedelta(minutes=33)),
        "hold",
        None,
        True,
    ),
    (
        "the next cycle does not notify again",
        replace(POLICY, notify_after=timedelta(minutes=30), cycle=timedelta(minutes=5)),
        state(verdict="inconclusive", last_step_at=NOW - timedelta(minutes=38)),
        "hold",
        None,
        False,
    ),
    (
        "without a known cycle every cycle past notify_after notifies",
        replace(POLICY, notify_after=timedelta(minutes=30), cycle=None),
        state(verdict="inconclusive", last_step_at=NOW - timedelta(hours=5)),
        "hold",
        None,
        True,
    ),
    (
        "a new canary image starts the count again",
        replace(POLICY, notify_after=timedelta(minutes=30), cycle=timedelta(minutes=5)),
        state(verdict="inconclusive", last_step_at=LONG_AGO, tag_changed_at=NOW - timedelta(minutes=12)),
        "hold",
        None,
        False,
    ),
    (
        "a passing analysis never notifies",
        replace(POLICY, notify_after=timedelta(minutes=30)),
        state(verdict="pass", weight=100, observed_share=100.0, last_step_at=NOW - timedelta(hours=5)),
        "complete",
        None,
        False,
    ),
    (
        "notify_after 0 never notifies",
        replace(POLICY, notify_after=timedelta(0)),
        state(verdict="inconclusive", last_step_at=NOW - timedelta(hours=5)),
        "hold",
        None,
        False,
    ),
]


@pytest.mark.parametrize(("label", "policy", "the_state", "action", "to", "notify"), CASES, ids=[c[0] for c in CASES])
def test_decisions(
    label: str, policy: CanaryPolicy, the_state: CanaryState, action: str, to: int | None, notify: bool
) -> None:
    decision = decide(policy, the_state)
    assert (decision.action, decision.to_weight, decision.notify) == (action, to, notify), decision.reason
    assert decision.from_weight == the_state.weight
    assert decision.reason


def test_dwell_remaining_is_reported() -> None:
    decision = decide(POLICY, state(last_step_at=NOW - timedelta(minutes=4)))
    assert decision.dwell_remaining == timedelta(minutes=6)
    assert "6m left" in decision.reason


def test_new_image_reason_says_the_dwell_restarted() -> None:
    decision = decide(POLICY, state(tag_changed_at=NOW - timedelta(minutes=1)))
    assert "dwell restarted" in decision.reason
    assert decision.dwell_remaining == timedelta(minutes=9)


def test_how_long_the_analysis_was_inconclusive_comes_from_the_step_time() -> None:
    policy = replace(POLICY, notify_after=timedelta(minutes=30), cycle=timedelta(minutes=5))
    held = decide(policy, state(verdict="inconclusive", last_step_at=NOW - timedelta(minutes=31)))
    assert held.inconclusive_for == timedelta(minutes=31)
    assert held.reason.endswith("; analysis inconclusive for 31m since the step")
    assert decide(POLICY, state(verdict="pass")).inconclusive_for is None
    # A weight set by hand has no step in history: git knows no start, so nothing is counted.
    by_hand = state(verdict="inconclusive", last_step_at=None, applied_at=NOW - timedelta(minutes=20))
    assert decide(POLICY, by_hand).inconclusive_for is None and not decide(POLICY, by_hand).notify


def test_not_applied_names_the_observed_share() -> None:
    decision = decide(POLICY, state(observed_share=0.4))
    assert "observed canary share 0.4%, committed 10%" in decision.reason


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("[]", "at least 1 item"),
        ("[0, 50]", "1..100"),
        ("[10, 101]", "1..100"),
        ("[60, 10]", "increase"),
        ("[10, 10]", "increase"),
        ("[10, 60]", "end at 100"),
    ],
)
def test_bad_steps_are_refused(tmp_path: Path, steps: str, message: str) -> None:
    # The policy loader is the one validator of the steps: the state machine takes the steps it is given.
    text = load_refusal(tmp_path, CANARY.replace("steps: [10, 60, 100]", f"steps: {steps}", 1))
    assert ":22: spec.canaries[0].steps: " in text, text
    assert message in text, text


def test_weight_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ManifestError):
        state(weight=130)


# Invariants over generated situations.
step_lists = st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True).map(lambda xs: tuple(sorted(xs)))
moments = st.one_of(st.none(), st.integers(-7200, 0).map(lambda s: NOW + timedelta(seconds=s)))


@st.composite
def situations(draw: st.DrawFn) -> tuple[CanaryPolicy, CanaryState]:
    steps = draw(step_lists)
    policy = CanaryPolicy(
        steps=steps,
        interval=timedelta(seconds=draw(st.integers(0, 3600))),
        share_tolerance=draw(st.floats(0, 20)),
        apply_timeout=timedelta(seconds=draw(st.integers(0, 3600))),
        on_failure=draw(st.sampled_from(["rollback", "hold"])),
        on_complete=draw(st.sampled_from(["hold", "promote"])),
        notify_after=timedelta(seconds=draw(st.integers(0, 7200))),
        cycle=draw(st.one_of(st.none(), st.integers(1, 900).map(lambda s: timedelta(seconds=s)))),
    )
    weight = draw(st.one_of(st.sampled_from((0, *steps)), st.integers(0, 100)))
    the_state = CanaryState(
        weight=weight,
        now=NOW,
        last_step_at=draw(moments),
        observed_share=draw(st.one_of(st.none(), st.floats(0, 100), st.just(float(weight)))),
        verdict=draw(st.sampled_from([None, "pass", "fail", "inconclusive"])),
        paused=draw(st.booleans()),
        tag_changed_at=draw(moments),
        applied_at=draw(moments),
        rolled_back=draw(st.booleans()),
        newer_tag=draw(st.booleans()),
        canary_differs=draw(st.booleans()),
    )
    return policy, the_state


@settings(max_examples=400, deadline=None)
@given(situations())
def test_invariants(situation: tuple[CanaryPolicy, CanaryState]) -> None:
    policy, the_state = situation
    decision: CanaryDecision = decide(policy, the_state)
    weight, verdict = the_state.weight, the_state.verdict
    # Only step and rollback change the weight, and they always say to what.
    assert (decision.to_weight is not None) == (decision.action in ("step", "rollback"))
    if decision.to_weight is not None:
        assert 0 <= decision.to_weight <= 100
    if decision.action == "step":
        assert decision.to_weight in policy.steps
        assert decision.to_weight == policy.next_step(weight)  # never skips a step, never goes down
        assert decision.to_weight is not None and decision.to_weight > weight
        if weight > 0:
            assert verdict == "pass"  # never step on inconclusive, missing or failing analysis
    if decision.action == "rollback":
        assert verdict == "fail"  # never roll back on inconclusive alone
        assert decision.to_weight == 0
        assert policy.on_failure == "rollback"
    if decision.action == "promote":
        assert verdict == "pass"
        assert policy.on_complete == "promote"
    if verdict == "inconclusive":
        assert decision.action not in ("step", "rollback", "promote", "complete") or weight == 0
    if the_state.paused:
        assert decision.action == "hold"
    if decision.action == "hold" and decision.dwell_remaining is not None:
        assert decision.dwell_remaining >= timedelta(0)
    if decision.notify and verdict == "inconclusive" and decision.action == "hold" and not the_state.paused:
        # Told only once the analysis held the step longer than notify_after (or for a reason of its own).
        assert decision.inconclusive_for is not None or "not applied" in decision.reason
    if verdict != "inconclusive":
        assert decision.inconclusive_for is None
    assert decide(policy, the_state) == decision  # pure


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_share_is_not_observed(bad: float) -> None:
    # NaN compares false with everything: unguarded it would look like a share within tolerance and step.
    decision = decide(POLICY, state(observed_share=bad))
    assert decision.action == "wait-for-traffic"
    assert decision.reason == "canary share not observable yet (committed 10%)"
    assert "nan" not in decision.reason and "inf" not in decision.reason


def test_an_inconclusive_hold_says_why_the_analysis_could_not_judge() -> None:
    why = "canary has 12 requests, needs 100"
    decision = decide(POLICY, state(verdict="inconclusive", verdict_reason=why))
    assert (decision.action, decision.reason) == ("hold", f"analysis inconclusive: {why}")
    assert decide(POLICY, state(verdict="inconclusive")).reason == "analysis inconclusive at 10%"
