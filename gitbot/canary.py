"""The canary state machine: policy + what one cycle observed -> the one thing to do now.

This module owns the rules of progression: start at the first step, wait until the committed weight is
visible in the traffic, dwell, step on a passing analysis, roll back (or hold) on a failing one, hold on
anything inconclusive, restart the dwell on a new canary image, start again after a rollback only when a
newer tag arrives, and complete (or promote) at the last step. It is a pure function of its inputs (the
clock is an input); it reads no files, metrics or history itself and decides nothing about how a change is
delivered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from gitbot.domain import Verdict
from gitbot.errors import ManifestError

OnFailure = Literal["rollback", "hold"]
OnComplete = Literal["hold", "promote"]
CanaryAction = Literal["hold", "step", "rollback", "complete", "promote", "wait-for-traffic", "not-applied"]


@dataclass(frozen=True)
class CanaryPolicy:
    """The canary's settings from the policy file.

    `steps`: canary weights in percent, strictly increasing, each in 1..100. `interval`: dwell at a step
    before the next. `share_tolerance`: how far (percentage points) the observed canary share may be from
    the committed weight for the step to count as applied; `apply_timeout`: after this long since the step
    with a different share observed, the step is reported as not applied. `notify_after`: notify when the
    analysis is still inconclusive this long after the step landed (0: never); `cycle`: the time between two
    cycles, so that only the first cycle past `notify_after` notifies (None: every cycle past it). Both come
    from time and git alone, so any process reaches the same decision. A plain value: the policy loader
    (`gitbot.config`) is the one place that refuses settings outside these bounds.
    """

    steps: tuple[int, ...]
    interval: timedelta
    share_tolerance: float = 5.0
    apply_timeout: timedelta = timedelta(minutes=15)
    on_failure: OnFailure = "rollback"
    on_complete: OnComplete = "hold"
    notify_after: timedelta = timedelta(minutes=15)
    cycle: timedelta | None = None

    def next_step(self, weight: int) -> int | None:
        """The first step above `weight`, or None when the canary is at or past the last step."""
        return next((step for step in self.steps if step > weight), None)


@dataclass(frozen=True)
class CanaryState:
    """What one cycle knows about the canary.

    `weight`: canary weight committed in git. `last_step_at`: when the bot last changed it (history; None
    when unknown). `applied_at`: when the observed share first matched the weight, if the caller measured
    it. `observed_share`: percent of requests that reached the canary over the analysis window (None: not
    observable). `verdict`: this cycle's analysis (None: not run). `tag_changed_at`: when the canary image
    changed after the last step (restarts the dwell). `rolled_back`: the last bot action on this canary was
    a rollback; `newer_tag`: a canary tag newer than the rolled-back one has arrived. `canary_differs`: the
    canary runs something other than GA (False: nothing to roll out). `paused_reason`: who paused it, or
    whose revert did (shown in the hold).
    `verdict_reason`: why the analysis gave its verdict (its summary, e.g. too few requests; shown in the hold).
    """

    weight: int
    now: datetime
    last_step_at: datetime | None = None
    observed_share: float | None = None
    verdict: Verdict | None = None
    paused: bool = False
    tag_changed_at: datetime | None = None
    applied_at: datetime | None = None
    rolled_back: bool = False
    newer_tag: bool = False
    canary_differs: bool = True
    paused_reason: str = ""
    verdict_reason: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ManifestError(f"canary weight {self.weight} is outside 0..100")
        if self.now.tzinfo is None:
            raise ValueError("CanaryState.now must be timezone-aware")


@dataclass(frozen=True)
class CanaryDecision:
    """The one thing to do this cycle.

    `to_weight` is set for `step` (the next weight) and `rollback` (0) only. `dwell_remaining` is the time
    left at the current step when known. `inconclusive_for` is how long an inconclusive analysis has held the
    step (since it landed, or since a new canary image), when known.
    """

    action: CanaryAction
    from_weight: int
    to_weight: int | None
    reason: str
    notify: bool = False
    dwell_remaining: timedelta | None = None
    inconclusive_for: timedelta | None = None


def _minutes(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds % 60 else f"{seconds // 60}m"
    return f"{seconds}s"


def dwell_left(interval: timedelta, now: datetime, *starts: datetime | None) -> timedelta | None:
    """Time left at the current step, from the latest of its starts (the step, a new canary image, the
    traffic showing the weight); None when no start is known."""
    known = [t for t in starts if t is not None]
    return max(max(known) + interval - now, timedelta(0)) if known else None


def inconclusive_for(state: CanaryState) -> timedelta | None:
    """How long an inconclusive analysis has held the step: since it landed or a new canary image did.

    None when the verdict is not inconclusive or git knows no start: a weight set by hand has no step in
    history, and the traffic's showing it is looked for only one dwell back, which would make every cycle
    look the same age.
    """
    if state.verdict != "inconclusive" or state.weight == 0:
        return None
    known = [t for t in (state.last_step_at, state.tag_changed_at) if t is not None]
    return max(state.now - max(known), timedelta(0)) if known else None


def overdue(policy: CanaryPolicy, held_for: timedelta) -> bool:
    """Whether this cycle tells someone: the first cycle after `notify_after` (every one when the cycle is unknown)."""
    if policy.notify_after <= timedelta(0) or held_for <= policy.notify_after:
        return False
    return policy.cycle is None or held_for <= policy.notify_after + policy.cycle


def decide(policy: CanaryPolicy, state: CanaryState) -> CanaryDecision:
    """Decide this cycle's action for one canary. Pure: same inputs, same decision.

    Order: paused -> hold; weight 0 -> start (or wait for a newer tag after a rollback); fail -> rollback
    (or hold); share not matching the weight -> wait-for-traffic / not-applied; dwell left -> hold; then
    pass -> next step, or at the last step complete/promote. Inconclusive or missing analysis holds. At
    100 percent GA gets no traffic: the caller judges comparisons on GA's figures from before the step there.
    """
    weight, verdict = state.weight, state.verdict
    held_for = inconclusive_for(state)
    alert = held_for is not None and overdue(policy, held_for)

    def out(
        action: CanaryAction,
        reason: str,
        *,
        to: int | None = None,
        notify: bool = False,
        dwell: timedelta | None = None,
    ) -> CanaryDecision:
        if alert and held_for is not None:
            reason += f"; analysis inconclusive for {_minutes(held_for)} since the step"
        return CanaryDecision(action, weight, to, reason, notify or alert, dwell, held_for)

    first = policy.steps[0]
    if state.paused:
        # A person's pause outlasts even a failing analysis; they hear about the failure instead.
        why = f"paused: {state.paused_reason}" if state.paused_reason else "paused"
        return out("hold", why + ("; analysis failed" if verdict == "fail" else ""), notify=verdict == "fail")
    # Only a canary at 0 waits after a rollback; above 0 after one, a person restarted it by hand and it
    # progresses from the committed weight.
    if weight == 0:
        if state.rolled_back and not state.newer_tag:
            return out("hold", "rolled back; waiting for a newer canary tag")
        if state.rolled_back:
            return out("step", f"newer canary tag after rollback: start again at {first}%", to=first)
        if not state.canary_differs:
            return out("hold", "nothing to roll out: the canary runs the GA version")
        return out("step", f"start canary at {first}%", to=first)

    if verdict == "fail":
        if policy.on_failure == "rollback":
            return out("rollback", f"analysis failed at {weight}%: roll back to 0%", to=0, notify=True)
        return out("hold", f"analysis failed at {weight}%; holding (onFailure: hold)", notify=True)

    share = state.observed_share
    # NaN compares false with every bound, so it would pass for a share within tolerance: no data instead.
    if share is None or not math.isfinite(share):
        return out("wait-for-traffic", f"canary share not observable yet (committed {weight}%)")
    if abs(share - weight) > policy.share_tolerance:
        seen = f"observed canary share {share:.1f}%, committed {weight}%"
        since = state.now - state.last_step_at if state.last_step_at else None
        if since is not None and since >= policy.apply_timeout:
            return out("not-applied", f"{seen} after {_minutes(since)}: step not applied", notify=True)
        return out("wait-for-traffic", seen)

    remaining = dwell_left(policy.interval, state.now, state.last_step_at, state.tag_changed_at, state.applied_at)
    remaining = remaining or timedelta(0)
    if remaining > timedelta(0):
        latest = max(t for t in (state.last_step_at, state.tag_changed_at, state.applied_at) if t is not None)
        restarted = state.tag_changed_at is not None and state.tag_changed_at == latest
        why = "new canary image, dwell restarted" if restarted else f"dwell at {weight}%"
        return out("hold", f"{why}: {_minutes(remaining)} left", dwell=remaining)

    target = policy.next_step(weight)
    if verdict is None:
        return out("hold", f"at {weight}%: analysis not run", dwell=remaining)
    if verdict == "inconclusive":
        why = f": {state.verdict_reason}" if state.verdict_reason else f" at {weight}%"
        return out("hold", f"analysis inconclusive{why}", dwell=remaining)
    if target is not None:
        return out("step", f"analysis passed at {weight}%: step to {target}%", to=target, dwell=remaining)
    if policy.on_complete == "promote" and state.canary_differs:
        return out("promote", f"canary complete at {weight}%: promote to GA", dwell=remaining)
    return out("complete", f"canary complete at {weight}%", dwell=remaining)
