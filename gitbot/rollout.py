"""Canary rollouts in git: read a route's weights, derive the canary's state from history, plan the change.

Pure. It finds the route a canary names among the scanned targets, refuses routes another controller
owns, reads from the bot's history when the canary last stepped, whether it was rolled back or paused and
whether its image changed since, asks `canary.decide` what to do with this cycle's observation, and turns
a step, rollback or promotion into a Plan with its evidence. Delivery is the reconcile shell's business.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gitbot import routes
from gitbot.analysis import AnalysisSpec, render_evidence
from gitbot.canary import CanaryDecision, CanaryPolicy, CanaryState
from gitbot.config import CanarySettings, Policy
from gitbot.domain import Action, Analysis, Assignment, Change, Plan, Target
from gitbot.edits import apply_assignments
from gitbot.errors import ConfigError, ManifestError
from gitbot.history import (
    TRAILER_FROM,
    TRAILER_PLAN,
    TRAILER_PREFIX,
    TRAILER_RESTART,
    TRAILER_TARGET,
    TRAILER_TO,
    BotCommit,
    History,
    parse_bot_commit,
)
from gitbot.messages import (
    canary_rollback_subject,
    hand_step_body,
    plain_rollback_note,
    plan_id,
    render_message,
    reverts_paragraph,
    rollback_trailers,
    step_subject,
    step_trailers,
    undoes_trailers,
    without_reverts_paragraph,
)
from gitbot.messages import marker_message as marker_text


@dataclass(frozen=True)
class RouteGroup:
    """One HTTP route of the canary's resource that sends to both the stable and the canary destination."""

    file: str
    document: int
    route: int
    stable: Target
    canary: Target

    @property
    def canary_weight(self) -> int:
        return int(self.canary.value)

    @property
    def stable_weight(self) -> int:
        return int(self.stable.value)


@dataclass(frozen=True)
class RouteState:
    canary: CanarySettings
    groups: tuple[RouteGroup, ...]

    @property
    def weight(self) -> int:
        return self.groups[0].canary_weight

    @property
    def namespace(self) -> str:
        return self.canary.route.split("/")[1]


@dataclass(frozen=True)
class CanaryHistory:
    """What history says about one canary."""

    last_step_at: datetime | None
    standing_steps: tuple[str, ...]
    rolled_back: bool
    newer_tag: bool
    tag_changed_at: datetime | None
    paused: bool
    paused_reason: str
    full_at: datetime | None = None
    # When the weights last moved before the step to 100% (the previous step, a revert or a restart): GA's
    # counts for the sequential checks at 100% run from here to `full_at`.
    before_full_at: datetime | None = None


@dataclass(frozen=True)
class Observation:
    """This cycle's measurements of one canary; every field may be missing (inconclusive)."""

    analysis: Analysis | None
    share: float | None
    applied_at: datetime | None
    chart: str = ""


def read_route(policy: Policy, index: int, targets: Sequence[Target]) -> RouteState:
    """The route groups of canary `index`; ConfigError when the route is missing, foreign or ambiguous."""
    canary = policy.spec.canaries[index]
    where = policy.where(f"/spec/canaries/{index}/route")
    weights = [t for t in targets if t.kind == "weight" and t.resource == canary.route]
    if not weights:
        raise ConfigError(
            f"canary {canary.name}: no weights of {canary.route} found under the policy's paths", where=where
        )
    foreign = next((t for t in weights if t.unmanaged), None)
    if foreign is not None:
        raise ConfigError(
            f"canary {canary.name}: {canary.route} ({foreign.file}:{foreign.line}) is managed by another "
            f"controller ({foreign.unmanaged}); gitbot will not move its weights",
            where=where,
        )
    route_kind = routes.named(canary.route.split("/")[0])
    by_route: dict[tuple[str, int, int], list[Target]] = defaultdict(list)
    for target in weights:
        by_route[(target.file, target.document, target.route or 0)].append(target)
    groups = []
    for (file, document, route), members in sorted(by_route.items()):
        stable = [t for t in members if route_kind.matches(t.backend, canary.stable.selector())]
        moving = [t for t in members if route_kind.matches(t.backend, canary.canary.selector())]
        if len(stable) == 1 and len(moving) == 1 and stable[0] != moving[0]:
            pair = _as_percents(canary, stable[0], moving[0], where)
            _check_split(canary, [*(t for t in members if t not in (stable[0], moving[0])), *pair], *pair, where)
            groups.append(RouteGroup(file, document, route, *pair))
    if not groups:
        raise ConfigError(_no_route_message(canary, weights), where=where)
    if len({g.canary_weight for g in groups}) > 1:
        seen = ", ".join(f"route {g.route}: {g.canary_weight}%" for g in groups)
        raise ConfigError(f"canary {canary.name}: its routes disagree on the canary weight ({seen})", where=where)
    return RouteState(canary, tuple(groups))


def _no_route_message(canary: CanarySettings, weights: Sequence[Target]) -> str:
    """Why no route of the canary's resource pairs its stable and canary destination, with what the route has."""
    has = ", ".join(dict.fromkeys(f"{t.destination} ({t.file}:{t.line})" for t in weights))
    route_kind = routes.named(canary.route.split("/")[0])
    for side, wanted in (("stable", canary.stable), ("canary", canary.canary)):
        if not any(route_kind.matches(t.backend, wanted.selector()) for t in weights):
            named = ", ".join(
                f"{key} {value}"
                for key, value in (("subset", wanted.subset), ("host", wanted.host), ("backendRef", wanted.backend_ref))
                if value is not None
            )
            return (
                f"canary {canary.name}: {canary.route} has no destination with {named}, which {side} names; "
                f"the route has: {has}"
            )
    return (
        f"canary {canary.name}: no HTTP route of {canary.route} sends to both the stable and the canary "
        f"destination with explicit weights; the route has: {has}"
    )


def _percent(target: Target) -> int:
    if not (target.value.isascii() and target.value.isdigit()) or int(target.value) > 100:
        raise ManifestError(
            f"weight {target.value!r} of {target.resource} ({target.destination}) must be a whole percent 0..100",
            where=f"{target.file}:{target.line}",
        )
    return int(target.value)


def _as_percents(canary: CanarySettings, stable: Target, moving: Target, where: str) -> tuple[Target, Target]:
    """Stable and canary as percents: as written, or when one writes no weight (the route kind's default), their
    shares of the two, which the first step writes out in full."""
    if not (stable.implicit or moving.implicit):
        return stable, moving
    total = _percent(stable) + _percent(moving)
    if total == 0 or (100 * _percent(moving)) % total:
        raise ConfigError(
            f"canary {canary.name}: the stable and canary weights of route {stable.route} of {canary.route} "
            f"({stable.file}:{stable.line}), {stable.value} and {moving.value} with the unwritten ones at their "
            "default, are not whole percents of the route's traffic; write them out",
            where=where,
        )
    return (
        replace(stable, value=str(100 * _percent(stable) // total)),
        replace(moving, value=str(100 * _percent(moving) // total)),
    )


def _check_split(canary: CanarySettings, members: Sequence[Target], stable: Target, moving: Target, where: str) -> None:
    """Refuse a route whose split the canary cannot move with its sum kept by touching only its two weights.

    Steps are percents of the route's traffic and the observed share is the canary's part of the two
    workloads: both hold only while stable and canary carry the whole 100 and every other weight is 0.
    """
    others = [t for t in members if t not in (stable, moving) and _percent(t) != 0]
    if others:
        other = others[0]
        raise ConfigError(
            f"canary {canary.name}: route {other.route} of {canary.route} also sends {other.value}% to "
            f"{other.destination} ({other.file}:{other.line}); gitbot moves only the stable and canary weights "
            "and needs them to carry all the route's traffic",
            where=where,
        )
    total = _percent(stable) + _percent(moving)
    if total != 100:
        raise ConfigError(
            f"canary {canary.name}: the stable and canary weights of route {stable.route} of {canary.route} "
            f"({stable.file}:{stable.line}) add up to {total}, not 100",
            where=where,
        )


def analysis_spec(state: RouteState) -> AnalysisSpec:
    """The AnalysisSpec of a canary, every check kept (at 100 percent its comparisons use a GA reference)."""
    settings = state.canary.analysis
    spec = AnalysisSpec(
        namespace=settings.namespace or state.namespace,
        stable_workload=settings.stable_workload,
        canary_workload=settings.canary_workload,
        window=settings.window,
        min_requests=settings.min_requests,
        checks=tuple(check.spec() for check in settings.checks),
    )
    return spec


def canary_policy(canary: CanarySettings, policy: Policy | None = None) -> CanaryPolicy:
    """The state machine's settings of `canary`; `policy` (its own) resolves notifyAfterInconclusive and the cycle."""
    notify_after = canary.analysis.notify_after_inconclusive
    cycle = None
    if policy is not None:
        index = next(i for i, c in enumerate(policy.spec.canaries) if c.name == canary.name)
        notify_after = policy.notify_after(index)
        cycle = policy.spec.schedule.interval
    return CanaryPolicy(
        steps=canary.steps,
        interval=canary.interval,
        share_tolerance=canary.traffic_tolerance,
        apply_timeout=canary.apply_timeout,
        on_failure=canary.on_failure,
        on_complete=canary.on_complete,
        notify_after=notify_after if isinstance(notify_after, timedelta) else timedelta(0),
        cycle=cycle,
    )


def canary_history(history: History, canary: CanarySettings) -> CanaryHistory:
    """When the canary last stepped, whether it was rolled back or paused, and whether its image changed."""
    steps = [
        c for c in history.commits if c.action == "canary-step" and any(ch.target == canary.name for ch in c.changes)
    ]
    # History is newest first in landing order; positions also order commits landed within the same second.
    newer = {c.sha: i for i, c in enumerate(history.commits)}
    restart = next((c for c in history.commits if c.reverted_by is None and canary.name in restarted(c)), None)
    if restart is not None:
        # A new image moved the weights back to 0%: the steps before it belong to the old image's rollout.
        steps = [c for c in steps if newer[c.sha] < newer[restart.sha]]
    standing = [c for c in steps if c.reverted_by is None]
    # A revert of a step moves the weights too: the apply timeout and the dwell count from it.
    moved = [c.landed for c in standing[:1]] + [c.reverted_by.landed for c in steps if c.reverted_by]
    moved += [restart.landed] if restart is not None else []
    last_step_at = max(moved) if moved else None
    own = [c for c in history.commits if any(ch.target == canary.name for ch in c.changes)]
    rollbacks = [c for c in own if c.action == "rollback" and c.reverted_by is None]
    last_rollback = rollbacks[0] if rollbacks else None
    if last_rollback is not None and restart is not None and newer[restart.sha] < newer[last_rollback.sha]:
        last_rollback = None  # a new image restarted the canary since
    rolled_back = last_rollback is not None and (not standing or newer[last_rollback.sha] < newer[standing[0].sha])
    image_updates = history.standing(canary.image, "image-update") if canary.image else []
    newest_image = image_updates[0].landed if image_updates else None
    # Only a tag other than the one the rollback quarantined restarts a rolled-back canary.
    quarantined = {tag for image, tag in last_rollback.quarantine if image == canary.image} if last_rollback else set()
    newer_tag = (
        rolled_back
        and last_rollback is not None
        and any(
            newer[update.sha] < newer[last_rollback.sha]
            and any(ch.target == canary.image and ch.new not in quarantined for ch in update.changes)
            for update in image_updates
        )
    )
    tag_changed_at = (
        newest_image if newest_image and standing and newer[image_updates[0].sha] < newer[standing[0].sha] else None
    )
    paused, reason = _paused(history, canary)
    return CanaryHistory(
        last_step_at,
        tuple(c.sha for c in standing),
        rolled_back,
        newer_tag,
        tag_changed_at,
        paused,
        reason,
        full_at=_full_at(standing, canary),
        before_full_at=_before_full_at(history, standing, canary),
    )


def restarted(commit: BotCommit) -> list[str]:
    """The canaries an image update restarted (moved back to 0%) in the same change."""
    return [value for key, value in commit.commit.trailers if key.lower() == TRAILER_RESTART.lower()]


def restart_on_new_image(
    policy: Policy,
    plans: Sequence[Plan],
    routes: Mapping[str, RouteState],
    texts: Mapping[str, str],
    *,
    chain: bool,
) -> list[Plan]:
    """`onNewImage: restart`: an image update that brings a canary with traffic a new tag also sets its weights
    to 0% in the same change, so the new image starts its rollout again from the first step once applied.

    With `chain` (commits on one branch) each plan starts from the files as the plans before it left them.
    """
    out: list[Plan] = []
    current = dict(texts)
    for plan in plans:
        images = {value for key, value in plan.trailers if key == TRAILER_TARGET}
        restart = [
            routes[c.name]
            for c in policy.spec.canaries
            if plan.action == "image-update"
            and c.on_new_image == "restart"
            and c.image in images
            and routes[c.name].weight > 0
        ]
        if restart:
            plan = _with_restart(policy.name, plan, restart, current if chain else texts)
        if chain:
            current.update(dict(plan.files))
        out.append(plan)
    return out


def _with_restart(policy: str, plan: Plan, routes: Sequence[RouteState], texts: Mapping[str, str]) -> Plan:
    moves = tuple(change for route in routes for change in weight_changes(route, 0))
    files = {**texts, **dict(plan.files)}
    edited = {**dict(plan.files), **apply_changes(files, moves)}
    changes = plan.changes + moves
    pid = plan_id(policy, plan.name, plan.action, changes)
    notes = "\n\n".join(
        f"Canary {route.canary.name} had {route.weight}% of the traffic; the new image would take it at once, so "
        f"this change also sets its weights from {route.weight}% to 0% (GA 100%) and its rollout starts again "
        f"from the first step ({route.canary.steps[0]}%) once this is applied (onNewImage: restart)."
        for route in routes
    )
    kept = [(key, value) for key, value in plan.trailers if key != TRAILER_PLAN]
    trailers = (*kept, *((TRAILER_RESTART, route.canary.name) for route in routes), (TRAILER_PLAN, pid))
    return replace(_amended(plan, notes, changes, edited, trailers), plan_id=pid)


# Bot actions that move a canary's weights.
_WEIGHT_ACTIONS = frozenset({"canary-step", "rollback", "promote"})


def _full_at(standing: Sequence[BotCommit], canary: CanarySettings) -> datetime | None:
    """When the standing step that gave the canary all traffic landed: GA's last window is the one before it."""
    for commit in standing:
        if any(ch.target == canary.name and ch.new == "100" for ch in commit.changes):
            return commit.landed
    return None


def _before_full_at(history: History, standing: Sequence[BotCommit], canary: CanarySettings) -> datetime | None:
    """When the canary's weights last moved before the standing step to 100% landed (the previous step, a
    revert, a rollback or a restart to 0%); None without a step to 100% or a move before it in history."""
    full = next((c for c in standing if any(ch.target == canary.name and ch.new == "100" for ch in c.changes)), None)
    if full is None:
        return None
    moves: list[datetime] = []
    for commit in history.commits:
        if canary.name in restarted(commit) or (
            commit.action in _WEIGHT_ACTIONS and any(ch.target == canary.name for ch in commit.changes)
        ):
            moves.append(commit.landed)
            if commit.reverted_by is not None:
                moves.append(commit.reverted_by.landed)
    return max((moment for moment in moves if moment < full.landed), default=None)


def _paused(history: History, canary: CanarySettings) -> tuple[bool, str]:
    """Paused by `gitbot pause`, or held because a person reverted one of the bot's steps."""
    events: list[tuple[datetime, bool, str]] = []
    for commit in history.commits:
        if not any(ch.target == canary.name for ch in commit.changes):
            continue
        if commit.action == "pause":
            why = _marker_reason(commit, canary.name)
            events.append((commit.landed, True, f"paused by {commit.commit.author.name}" + (f": {why}" if why else "")))
        elif commit.action == "resume":
            events.append((commit.landed, False, ""))
        elif commit.action == "canary-step" and commit.reverted_by is not None:
            by = commit.reverted_by
            if parse_bot_commit(by) is None:
                events.append((by.landed, True, f"a person ({by.author.name}) reverted step {commit.sha[:7]}"))
    if not events:
        return False, ""
    _, paused, reason = max(events, key=lambda e: e[0])
    return paused, reason


def _marker_reason(commit: BotCommit, name: str) -> str:
    """The reason a pause or resume marker records (`--reason`), "" when none was given."""
    first = commit.commit.body.partition("\n\n")[0].strip()
    if not first or first == default_marker_reason(commit.action, name) or parse_trailer_line(first):
        return ""
    return " ".join(first.split())


def default_marker_reason(action: str, name: str) -> str:
    """The body of a pause or resume marker made without a reason."""
    return f"{action}d by gitbot {action} {name}"


def parse_trailer_line(text: str) -> bool:
    """Whether `text` is a block of gitbot trailers (a marker whose body holds nothing else)."""
    return all(line.startswith(TRAILER_PREFIX) and ": " in line for line in text.splitlines())


def observe_state(
    route: RouteState,
    hist: CanaryHistory,
    observation: Observation,
    now: datetime,
    *,
    canary_differs: bool,
) -> CanaryState:
    return CanaryState(
        weight=route.weight,
        now=now,
        last_step_at=hist.last_step_at,
        observed_share=observation.share,
        verdict=observation.analysis.verdict if observation.analysis else None,
        paused=hist.paused,
        tag_changed_at=hist.tag_changed_at,
        applied_at=observation.applied_at,
        rolled_back=hist.rolled_back,
        newer_tag=hist.newer_tag,
        canary_differs=canary_differs,
        paused_reason=hist.paused_reason,
        verdict_reason=observation.analysis.summary if observation.analysis else "",
    )


def weight_changes(route: RouteState, to: int) -> tuple[Change, ...]:
    """Move every route group's canary to `to`, giving the difference to the stable destination."""
    changes: list[Change] = []
    for group in route.groups:
        delta = to - group.canary_weight
        for target, value in ((group.canary, to), (group.stable, group.stable_weight - delta)):
            changes.append(
                Change(
                    target.file, target.document, target.pointer, target.resource, "weight", target.value, str(value)
                )
            )
    return tuple(changes)


def apply_changes(texts: Mapping[str, str], changes: Sequence[Change]) -> dict[str, str]:
    by_file: dict[str, list[Assignment]] = defaultdict(list)
    for change in changes:
        by_file[change.file].append(Assignment(change.document, change.pointer, change.new))
    return {file: apply_assignments(texts[file], items, source=file) for file, items in sorted(by_file.items())}


def evidence_text(decision: CanaryDecision, observation: Observation, *, measured_on: str = "") -> str:
    """The decision and its evidence; `measured_on` names the canary image the analysis measured."""
    parts = [f"Decision: {decision.reason}."]
    if observation.analysis is not None:
        if measured_on:
            parts.append(f"Evidence measured on canary image {measured_on}:")
        parts.append(render_evidence(observation.analysis))
    if observation.share is not None and math.isfinite(observation.share):
        parts.append(f"Observed canary share of requests over the window: {observation.share:.1f}%.")
    return "\n\n".join(parts)


def _weight_plan(
    policy: str,
    name: str,
    action: Action,
    changes: tuple[Change, ...],
    texts: Mapping[str, str],
    subject: str,
    body: str,
    trailers: tuple[tuple[str, str], ...],
    pid: str,
    observation: Observation,
    reverts: tuple[str, ...] = (),
) -> Plan:
    """A plan that moves weights: the edited files, and the body with the latency chart as its evidence."""
    evidence = body + (f"\n\n{observation.chart}" if observation.chart else "")
    files = tuple(sorted(apply_changes(texts, changes).items()))
    return Plan(policy, name, action, changes, files, subject, body, trailers, pid, evidence, reverts=reverts)


def step_plan(
    policy: Policy,
    route: RouteState,
    decision: CanaryDecision,
    observation: Observation,
    texts: Mapping[str, str],
    *,
    to: int,
    manual: bool = False,
    canary_tag: str | None = None,
) -> Plan:
    canary = route.canary
    changes = weight_changes(route, to)
    pid = plan_id(policy.name, canary.name, "canary-step", changes, [canary_tag] if canary_tag else [])
    subject = step_subject(policy.name, canary.name, route.weight, to)
    repository = next((image.repository for image in policy.spec.images if image.name == canary.image), None)
    body = evidence_text(decision, observation, measured_on=_canary_image(repository, canary_tag))
    if manual:
        body = hand_step_body(policy.name, canary.name, body)
    trailers = step_trailers(policy.name, canary.name, route.weight, to, pid)
    return _weight_plan(
        policy.name, canary.name, "canary-step", changes, texts, subject, body, trailers, pid, observation
    )


def _canary_image(repository: str | None, tag: str | None) -> str:
    """The canary's image as `repository:tag`, so that a reviewer sees which build the evidence is about."""
    if not tag:
        return ""
    return f"{repository}:{tag}" if repository else ""


def rollback_plan(
    policy: Policy,
    route: RouteState,
    hist: CanaryHistory,
    decision: CanaryDecision,
    observation: Observation,
    texts: Mapping[str, str],
    canary_tag: str | None,
) -> Plan:
    """Revert the standing steps (the reconcile shell falls back to `files` when the revert conflicts)."""
    canary = route.canary
    changes = weight_changes(route, 0)
    summary = observation.analysis.summary if observation.analysis and observation.analysis.summary else decision.reason
    subject = canary_rollback_subject(policy.name, canary.name, summary)
    quarantine = [(canary.image, canary_tag)] if canary.image and canary_tag else []
    pid = plan_id(policy.name, canary.name, "rollback", changes, [canary_tag] if canary_tag else [])
    reverts = reverts_paragraph(hist.standing_steps)
    body = (reverts + "\n" if reverts else "") + evidence_text(decision, observation)
    if quarantine:
        body += f"\n\nQuarantined canary tag: {canary_tag} (not applied again; a newer tag restarts the canary)."
    trailers = rollback_trailers(policy.name, canary.name, str(route.weight), "0", pid, quarantine)
    return _weight_plan(
        policy.name,
        canary.name,
        "rollback",
        changes,
        texts,
        subject,
        body,
        trailers,
        pid,
        observation,
        hist.standing_steps,
    )


def with_image_restore(
    image: str | None, plan: Plan, bad: str, good: str, changes: Sequence[Change], texts: Mapping[str, str]
) -> Plan:
    """A canary rollback that also returns the canary image `image` from `bad` (which stays quarantined) to
    `good`, the tag it ran before: git then shows the last good state, not the bad tag idling at 0%."""
    if not changes:
        return plan
    moved = plan.changes + tuple(changes)
    files = {**dict(plan.files), **apply_changes({**texts, **dict(plan.files)}, changes)}
    note = f"This rollback also returns canary image {image} from {bad} to {good}, the tag it ran before."
    plan_at = next(i for i, (key, _value) in enumerate(plan.trailers) if key == TRAILER_TO) + 1
    trailers = (
        *plan.trailers[:plan_at],
        (TRAILER_TARGET, image or ""),
        (TRAILER_FROM, bad),
        (TRAILER_TO, good),
        *plan.trailers[plan_at:],
    )
    return _amended(plan, note, moved, files, trailers)


def _amended(
    plan: Plan,
    note: str,
    changes: tuple[Change, ...],
    files: Mapping[str, str],
    trailers: tuple[tuple[str, str], ...],
) -> Plan:
    """`plan` with these changes, files and trailers, and `note` as a last paragraph of its body and evidence."""
    return replace(
        plan,
        changes=changes,
        files=tuple(sorted(files.items())),
        body=f"{plan.body}\n\n{note}",
        trailers=trailers,
        evidence=f"{plan.evidence}\n\n{note}",
    )


def _with_note(plan: Plan, note: str, *, before_reverts: bool) -> str:
    """The rollback's message with `note` before or after its `This reverts commit` lines (its first paragraph)."""
    reverts, _, rest = plan.body.partition("\n\n")
    parts = [note, reverts, rest] if before_reverts else [reverts, note, rest]
    return render_message(plan.subject, "\n\n".join(part for part in parts if part), plan.trailers)


def settle_rollback(plan: Plan, reverted: RouteState, texts: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """What a rollback commits on top of its revert: the files and message that end the canary at 0%.

    Reverting the bot's steps restores the weight from before them, which need not be 0% (a person may have
    set it by hand): then the same commit also sets it to 0%, and its message says so. `reverted` is the
    route as the revert leaves it, `texts` the files it lies in.
    """
    if reverted.weight == 0:
        return {}, render_message(plan.subject, plan.body, plan.trailers)
    files = apply_changes(texts, weight_changes(reverted, 0))
    note = (
        f"Reverting these steps restores the canary weight from before them, {reverted.weight}%; this commit then "
        f"sets it from {reverted.weight}% to 0% (GA 100%)."
    )
    return files, _with_note(plan, note, before_reverts=False)


def rollback_commit_message(plan: Plan) -> str:
    """The message of a rollback that could not be a `git revert`: it sets the weights to 0% itself.

    Nothing is reverted, so it carries no `This reverts commit` lines: `Gitbot-Undoes` trailers name the steps
    it undoes, and history reads them as it reads a revert.
    """
    # The canary's own From (a rollback that also returns the canary image has a second one).
    weight = next((value for key, value in plan.trailers if key == TRAILER_FROM), "?")
    note = plain_rollback_note(plan.reverts, weight)
    body = "\n\n".join(part for part in (note, without_reverts_paragraph(plan.body)) if part.strip())
    return render_message(plan.subject, body, undoes_trailers(plan.trailers, plan.reverts))


def marker_message(policy: Policy, name: str, action: str, why: str) -> str:
    """The message of a pause/resume marker commit."""
    return marker_text(policy.name, name, action, why)
