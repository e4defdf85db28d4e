"""The commands a person runs by hand on one policy: rollback, promote, pause and resume of a canary, and
the read-only status and canary inspection.

Each command that changes the branch makes its plan on a fresh checkout and delivers it by the policy's mode;
run again after its change landed (a repeat after a crash), it finds that change and delivers nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from gitbot.canary import CanaryDecision, decide, dwell_left
from gitbot.candidates import Vetting, narrow
from gitbot.config import Policy
from gitbot.cycle import Deps, observe, read_gates, refuse_set_aside, set_aside_unbound
from gitbot.delivery import (
    MANUAL_PREFIX,
    PROMOTE_PREFIX,
    Delivery,
    author_of,
    bot_branch,
    deliver_commits,
    deliver_pull_requests,
    retry_on_reject,
)
from gitbot.domain import Plan, Target
from gitbot.errors import ConfigError, PushRejectedError, UsageError
from gitbot.gather import gather, read_texts, scan_checkout
from gitbot.history import BotCommit, History, read_history
from gitbot.manifests import Problem
from gitbot.messages import BY_HAND, hand_rollback_message, plan_id_in
from gitbot.planner import admitted_tags, behind_quarantine, bind_images
from gitbot.ports import ChangeRequest, Checkout
from gitbot.promotion import Gate, held_back
from gitbot.rollout import (
    Observation,
    canary_history,
    canary_policy,
    default_marker_reason,
    marker_message,
    observe_state,
    read_route,
    step_plan,
)
from gitbot.tagfacts import vet_images
from gitbot.versioning import TagFilter, select


@dataclass(frozen=True)
class ImageStatus:
    name: str
    current: tuple[str, ...]
    # The tag a cycle would pick: past the promotion gate and the release age and signature checks.
    newest: str | None
    candidates: tuple[str, ...]
    quarantined: tuple[tuple[str, str], ...]
    # Why the newest tag is unknown: this cycle's tag lookup failed (one line), else "".
    lookup_error: str = ""
    # Whether retrying that lookup later may help.
    lookup_retryable: bool = True
    # Newer tags held back, newest first, and why: by the promotion gate (soak left, rolled back there, ...)
    # or by the registry's facts (too young for minAge, not signed, a bad signature).
    held: tuple[tuple[str, str], ...] = ()
    # Tags its targets run although they are quarantined (a rolled-back canary whose earlier tag git does
    # not know keeps the bad one at 0%), with the targets that run each.
    quarantined_targets: tuple[tuple[str, str], ...] = ()
    # With `digest: pin`: the digest the registry serves for `newest`, which a cycle writes beside it.
    digest: str | None = None
    # What the release age and signature checks add (e.g. no tag qualified among the newest they inspect).
    note: str = ""
    # Whether the image asks the registry about its tags (minAge, digest or verify).
    vetted: bool = False


@dataclass(frozen=True)
class StatusReport:
    policy: str
    head: str
    images: tuple[ImageStatus, ...]
    pulls: tuple[ChangeRequest, ...]
    # Files the scan could not take in, and the images and canaries left out because of them.
    problems: tuple[Problem, ...] = ()


def status(policy: Policy, deps: Deps) -> StatusReport:
    """Per image: the tags running now, the tag a cycle would pick (past its promotion gate, `minAge` and
    `verify`, with the digest `digest: pin` writes), the newer tags held back and why, quarantined tags; PRs."""
    now = deps.clock.now()
    problems: list[Problem] = []
    with deps.workspace.checkout() as checkout:
        targets, _texts, history, tags, failures = gather(
            policy, checkout, deps.registry, deps.scan_cache, problems=problems
        )
        policy = set_aside_unbound(policy, targets, problems)
        gates = read_gates(policy, deps, checkout, now)
        head = checkout.head
    bindings = bind_images(policy, targets)
    # The registry is asked about the tags the gates let through, as a cycle asks (see `plan_cycle`).
    admitted = {
        b.image.name: admitted_tags(b, tags[b.image.name], gates.get(b.image.name))
        for b in bindings
        if b.image.name in tags
    }
    vetted, unvetted = vet_images(policy, deps.registry, bindings, admitted, history, now)
    failed = {failure.image: failure for failure in (*failures, *unvetted)}
    images = []
    for binding in bindings:
        image = binding.image
        flt = binding.filter
        quarantined = history.quarantined(image.name)
        current = tuple(sorted({binding.tag_of(t) or "(none)" for t in binding.targets}))
        vetting = vetted.get(image.name)
        gate = gates.get(image.name)
        listed, held = gated_tags(tags.get(image.name, ()), flt, quarantined.keys(), current, gate, vetting)
        selection = narrow(select(listed, flt, quarantine=quarantined.keys()), vetting)
        blocked = behind_quarantine(listed, flt, selection)
        flagged = tuple((t.resource, tag) for t in binding.targets if (tag := binding.tag_of(t)) in quarantined)
        newest = None if blocked else selection.selected
        images.append(
            ImageStatus(
                image.name,
                current,
                newest,
                selection.candidates,
                tuple((tag, q.reason) for tag, q in sorted(quarantined.items())),
                lookup_error=failed[image.name].one_line() if image.name in failed else "",
                lookup_retryable=failed[image.name].retryable if image.name in failed else True,
                held=held,
                quarantined_targets=flagged,
                digest=vetting.digest if vetting is not None and newest and image.digest == "pin" else None,
                note=vetting.note if vetting is not None else "",
                vetted=vetting is not None,
            )
        )
    pulls: tuple[ChangeRequest, ...] = ()
    if deps.forge is not None:
        pulls = tuple(deps.forge.open_change_requests(f"gitbot/{policy.name}/"))
    return StatusReport(policy.name, head, tuple(images), pulls, tuple(problems))


def gated_tags(
    tags: Sequence[str],
    flt: TagFilter,
    quarantined: Collection[str],
    current: Collection[str],
    gate: Gate | None,
    vetting: Vetting | None = None,
) -> tuple[Sequence[str], tuple[tuple[str, str], ...]]:
    """The tags an image may take past its promotion gate (as the planner counts them), and the newer tags
    than the one a cycle picks that are held back, newest first, with why: by the gate, or by `vetting`
    (what the registry said of the tags the gate let through: release age, signature)."""
    listed = gate.admit(tags, keep=current) if gate is not None else tags
    chosen = narrow(select(listed, flt, quarantine=quarantined), vetting).selected
    ranked = select(tags, flt, quarantine=quarantined).candidates
    by_gate = dict(held_back(gate, ranked, chosen)) if gate is not None else {}
    by_facts = dict(vetting.skipped) if vetting is not None else {}
    held: list[tuple[str, str]] = []
    for tag in ranked:
        if tag == chosen:
            break
        reason = by_gate.get(tag) or by_facts.get(tag)
        if reason:
            held.append((tag, reason))
    return listed, tuple(held)


def deliver_one(
    policy: Policy, deps: Deps, make: Callable[[Checkout], Plan | Delivery], *, branch_name: str
) -> Delivery:
    """Make one plan on a fresh checkout and deliver it by the policy's mode, re-planning on a rejected push.

    Pull-request mode uses `gitbot/<policy>/<branch_name>` and leaves the bot's other pull requests alone.
    `make` returns a Delivery instead of a plan when the change it would make is already there (a command
    run again after it landed): that is returned as it is and nothing is delivered.
    """
    with deps.workspace.checkout() as checkout:
        if policy.spec.delivery.mode == "pull-request":
            made = make(checkout)
            if isinstance(made, Delivery):
                return made
            if deps.forge is None:
                raise ConfigError("pull-request delivery needs a forge (spec.delivery.github)", where=policy.source)
            # Run by hand: a person asking again overrides their earlier closing of the pull request.
            return deliver_pull_requests(
                policy,
                checkout,
                deps.forge,
                [replace(made, name=branch_name)],
                close_superseded=False,
                honour_closed=False,
            )[0]

        def attempt(_number: int) -> Delivery:
            made = make(checkout)
            if isinstance(made, Delivery):
                return made
            return deliver_commits(policy, checkout, [replace(made, name=branch_name)])[0]

        return retry_on_reject(policy, checkout, attempt, deps.log)


def already(name: str, ref: str, message: str) -> Delivery:
    """The answer of a command run again: its change is already there, `ref` shows it, nothing is delivered."""
    return Delivery(name, "unchanged", ref, message)


def open_manual_pull(policy: Policy, deps: Deps, branch_name: str, plan: str) -> Delivery | None:
    """In pull-request mode, the open pull request of a command run by hand that already proposes `plan`."""
    if policy.spec.delivery.mode != "pull-request" or deps.forge is None:
        return None
    existing = deps.forge.find_change_request(bot_branch(policy, branch_name))
    if existing is None or plan_id_in(existing.body) != plan:
        return None
    return already(branch_name, existing.url, f"already proposed in {existing.url}: {existing.title}")


def rollback(policy: Policy, deps: Deps, name: str, *, further: bool = False) -> Delivery:
    """Revert the newest standing bot change for `name` with `git revert`, by the policy's delivery mode.

    The tags that change introduced are quarantined through the rollback commit's trailers. Run again after
    its revert landed (or after anyone reverted that change), it reports the revert and changes nothing; in
    pull-request mode an open pull request that already proposes the rollback is reported the same way.
    With `further` it reverts the newest change that still stands even so: one change further back.
    """

    def make(checkout: Checkout) -> Plan | Delivery:
        history = read_history(checkout.log(), policy.name)
        undone = None if further else history.undone(name)
        if undone is not None:
            return already(name, undone.sha, f"already rolled back by {undone.sha[:7]}: {undone.subject}")
        standing = history.revertible(name)
        if not standing:
            raise UsageError(
                f"policy {policy.name} has no standing gitbot change for {name!r} to roll back",
                hint=f"gitbot status --policy {policy.name} shows what the bot changed",
            )
        victim = standing[0]
        mine = [c for c in victim.changes if c.target == name] or list(victim.changes)
        quarantine = [(c.target, c.new) for c in victim.changes] if victim.action == "image-update" else []
        message = hand_rollback_message(policy.name, name, victim.sha, mine[0].old, mine[0].new, quarantine)
        proposed = open_manual_pull(policy, deps, f"{MANUAL_PREFIX}{name}", message.plan_id)
        if proposed is not None:
            return proposed
        return Plan(
            policy.name,
            name,
            "rollback",
            (),
            (),
            message.subject,
            message.body,
            message.trailers,
            message.plan_id,
            message.body,
            reverts=(victim.sha,),
        )

    return deliver_one(policy, deps, make, branch_name=f"{MANUAL_PREFIX}{name}")


def _canary_index(policy: Policy, name: str) -> int:
    for index, canary in enumerate(policy.spec.canaries):
        if canary.name == name:
            return index
    known = ", ".join(c.name for c in policy.spec.canaries) or "none"
    raise UsageError(f"policy {policy.name} has no canary named {name!r} (canaries: {known})")


@dataclass(frozen=True)
class CanaryReport:
    """A canary as it stands: weight and step from git, dwell left, pause, and an analysis run now."""

    name: str
    route: str
    weight: int
    step: str
    dwell_left: timedelta | None
    paused: str
    observation: Observation
    steps: tuple[int, ...] = ()
    decision: CanaryDecision | None = None
    stable_images: tuple[str, ...] = ()
    canary_images: tuple[str, ...] = ()


def inspect_canary(policy: Policy, deps: Deps, name: str) -> CanaryReport:
    """Read one canary's state from git and run its analysis now (nothing is delivered)."""
    index = _canary_index(policy, name)
    canary = policy.spec.canaries[index]
    problems: list[Problem] = []
    with deps.workspace.checkout() as checkout:
        targets = scan_checkout(policy, checkout, deps.scan_cache, problems)
        history = read_history(checkout.log(), policy.name)
    refuse_set_aside(policy, targets, problems, name)
    route = read_route(policy, index, targets)
    now = deps.clock.now()
    hist = canary_history(history, canary)
    observation = (
        observe(policy, route, history, deps.metrics(canary), now) if deps.metrics else Observation(None, None, None)
    )
    if route.weight == 0:
        step = "not started"
    elif route.weight in canary.steps:
        step = f"step {canary.steps.index(route.weight) + 1} of {len(canary.steps)}"
    else:
        step = "between steps (set by hand)"
    # Counted as the cycle counts it: from the step, a new canary image or the traffic showing the weight.
    dwell = dwell_left(canary.interval, now, hist.last_step_at, hist.tag_changed_at, observation.applied_at)
    stable, moving = (
        workload_images(targets, workload)
        for workload in (canary.analysis.stable_workload, canary.analysis.canary_workload)
    )
    differs = not stable or not moving or {_tag_of(v) for v in stable} != {_tag_of(v) for v in moving}
    # What a cycle would decide now, so that a person sees why the canary holds.
    decision = decide(
        canary_policy(canary, policy), observe_state(route, hist, observation, now, canary_differs=differs)
    )
    return CanaryReport(
        name,
        canary.route,
        route.weight,
        step,
        dwell,
        hist.paused_reason if hist.paused else "",
        observation,
        steps=canary.steps,
        decision=decision,
        stable_images=stable,
        canary_images=moving,
    )


def workload_images(targets: Sequence[Target], workload: str) -> tuple[str, ...]:
    """The images the workload named `workload` runs (its containers' `image:` values), as written."""
    return tuple(sorted({t.value for t in targets if t.kind == "image" and t.resource.rsplit("/", 1)[-1] == workload}))


def _tag_of(image: str) -> str:
    return image.rsplit("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2] or image


def hand_step(history: History, name: str, weight: int) -> BotCommit | None:
    """The step by hand that brought canary `name` to `weight`, when it is the canary's newest change."""
    for commit in history.commits:
        if not any(change.target == name for change in commit.changes) or commit.action in ("pause", "resume"):
            continue
        by_hand = commit.action == "canary-step" and commit.commit.body.startswith(BY_HAND)
        arrived = any(change.target == name and change.new == str(weight) for change in commit.changes)
        return commit if by_hand and arrived and commit.reverted_by is None else None
    return None


def promote(policy: Policy, deps: Deps, name: str, to: int | None = None) -> Delivery:
    """Make the canary's next step (or move it to `to`) by hand, whatever the analysis says.

    Run again, it changes nothing and says so: `to` the weight the canary has; a plain step when the canary's
    newest change is a step by hand that brought it to its weight (a repeat after a crash would otherwise
    step twice; a person who means a second step gives `to`); or, in pull-request mode, when the open
    `promote-<name>` pull request already proposes the step.
    """
    index = _canary_index(policy, name)
    canary = policy.spec.canaries[index]
    if to == 0:
        # A step to 0 is no rollback: nothing would hold the canary there, the next cycle starts it again.
        raise UsageError(
            f"--to 0 would not keep canary {name} at 0%: the next cycle starts it again",
            hint=f"roll it back with `gitbot rollback {name} --policy {policy.name}` "
            f"or hold it with `gitbot pause {name}`",
        )

    def make(checkout: Checkout) -> Plan | Delivery:
        problems: list[Problem] = []
        targets = scan_checkout(policy, checkout, deps.scan_cache, problems)
        refuse_set_aside(policy, targets, problems, name)
        texts = read_texts(checkout, {t.file for t in targets})
        route = read_route(policy, index, targets)
        if to == route.weight:
            return already(name, checkout.head, f"canary {name} is already at {to}%; nothing to change")
        if to is not None and to < route.weight:
            # Going down is no step: the next cycle would take the canary up again at once.
            raise UsageError(
                f"--to {to} would move canary {name} down from {route.weight}%: promote only moves a canary up",
                hint=f"roll it back with `gitbot rollback {name} --policy {policy.name}` "
                f"or hold it with `gitbot pause {name}`",
            )
        target = to if to is not None else canary_policy(canary).next_step(route.weight)
        done = hand_step(read_history(checkout.log(), policy.name), name, route.weight) if to is None else None
        if done is not None:
            further = f"to step further, give the weight: gitbot promote {name} --to W" if target else "its last step"
            return already(name, done.sha, f"already promoted by {done.sha[:7]}: {done.commit.subject}; {further}")
        if target is None:
            raise UsageError(f"canary {name} is already at its last step ({route.weight}%); give --to to move it")
        if not 1 <= target <= 100:
            raise weight_out_of_range(target)
        decision = CanaryDecision("step", route.weight, target, f"stepped by hand from {route.weight}% to {target}%")
        plan = step_plan(policy, route, decision, Observation(None, None, None), texts, to=target, manual=True)
        return open_manual_pull(policy, deps, f"{PROMOTE_PREFIX}{name}", plan.plan_id) or plan

    # Its own branch: a person's step is not the cycle's plan, which would close or rewrite it.
    return deliver_one(policy, deps, make, branch_name=f"{PROMOTE_PREFIX}{name}")


def weight_out_of_range(to: int) -> UsageError:
    """The error of a `promote --to` weight outside the range its help states."""
    return UsageError(f"--to must be a weight in 1..100, above the canary's current weight; got {to}")


def mark_paused(policy: Policy, deps: Deps, name: str, *, paused: bool, why: str = "") -> Delivery:
    """Pause or resume canary `name` with a marker commit; a pause of a paused canary (or a resume of one
    that runs) records nothing and says so, so that a command run again after a crash adds no second marker."""
    index = _canary_index(policy, name)
    canary = policy.spec.canaries[index]
    action = "pause" if paused else "resume"
    message = marker_message(policy, name, action, why or default_marker_reason(action, name))
    with deps.workspace.checkout() as checkout:

        def attempt(_number: int) -> Delivery:
            base = checkout.head
            hist = canary_history(read_history(checkout.log(), policy.name), canary)
            if hist.paused == paused:
                state = f"already paused ({hist.paused_reason})" if paused else "not paused"
                return already(name, base, f"canary {name} ({policy.name}) is {state}; nothing recorded")
            sha = checkout.record(message, author_of(policy))
            try:
                checkout.push()
            except PushRejectedError:
                checkout.reset(base)
                raise
            return Delivery(name, "committed", sha, message.split("\n", 1)[0])

        return retry_on_reject(policy, checkout, attempt, deps.log)
