"""One reconcile cycle for one policy: checkout -> scan -> history -> gather -> plan -> deliver -> report.

The only module that sequences I/O, always through the ports in `gitbot.ports`; it builds no adapter.
Dry-run is "stop after planning". The environment branch is never force-pushed: a rejected push means
refresh from the remote, plan again from the new head and retry, a bounded number of times.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from gitbot.analysis import (
    latency_series,
    observed_canary_share,
    read_ga_reference,
    render_latency_chart,
    run_analysis,
    run_full_weight_analysis,
    share_applied_at,
)
from gitbot.canary import CanaryDecision, decide, dwell_left
from gitbot.config import MANUAL_PREFIXES, CanarySettings, Policy
from gitbot.domain import Author, Plan, Target
from gitbot.errors import ConfigError, GitbotError, GitError, MissingPathError, PushRejectedError, UsageError
from gitbot.history import TRAILER_TARGET, History, read_history
from gitbot.manifests import ScanCache, scan_paths
from gitbot.messages import PLAN_MARKER, plan_id, plan_id_in, pull_request_body, render_message, rollback_trailers
from gitbot.planner import (
    CanaryOutcome,
    behind_quarantine,
    bind_images,
    current_tag,
    image_filter,
    plan_canaries,
    plan_images,
)
from gitbot.ports import Checkout, Clock, Forge, Metrics, PullRequest, Registry, RevertFinish, Workspace
from gitbot.rollout import (
    Observation,
    RouteState,
    analysis_spec,
    canary_history,
    canary_policy,
    marker_message,
    observe_state,
    read_route,
    restart_on_new_image,
    rollback_commit_message,
    settle_rollback,
    step_plan,
)
from gitbot.versioning import select

# Branch names of pull requests a person asked for by hand (`gitbot/<policy>/rollback-<name>`,
# `promote-<name>`); cycles never close them as superseded. No image or canary name may start with one.
MANUAL_PREFIX, PROMOTE_PREFIX = MANUAL_PREFIXES

# "skipped": a person closed this plan's pull request unmerged; it is not opened again until the plan changes.
Outcome = Literal["committed", "opened", "updated", "unchanged", "skipped", "closed", "planned"]
SUPERSEDED_MARKER = "<!-- gitbot:superseded-plan-id="


@dataclass(frozen=True)
class Delivery:
    """What happened to one plan (or one superseded pull request)."""

    name: str
    outcome: Outcome
    ref: str
    subject: str


@dataclass(frozen=True)
class CycleResult:
    policy: str
    plans: tuple[Plan, ...]
    deliveries: tuple[Delivery, ...]
    diff: str
    attempts: int
    head: str
    canaries: tuple[CanaryOutcome, ...] = ()


@dataclass(frozen=True)
class Deps:
    """The adapters one cycle uses, built by the composition root."""

    workspace: Workspace
    registry: Registry
    clock: Clock
    forge: Forge | None = None
    metrics: Callable[[CanarySettings], Metrics] | None = None
    log: Callable[[str], None] = field(default=lambda _msg: None)
    # The stage a cycle enters (checkout, scan, history, tags ..., plan, analysis, deliver), for progress.
    progress: Callable[[str], None] = field(default=lambda _stage: None)
    scan_cache: ScanCache | None = None


def author_of(policy: Policy) -> Author:
    return Author(policy.spec.git.author.name, policy.spec.git.author.email)


def bot_branch(policy: Policy, name: str) -> str:
    return f"gitbot/{policy.name}/{name}"


def read_exact(path: Path) -> str:
    """A file's text with its line endings untouched (text mode would turn CRLF into LF)."""
    return path.read_bytes().decode("utf-8")


def scan_checkout(policy: Policy, checkout: Checkout, cache: ScanCache | None = None) -> list[Target]:
    """The targets under the policy's paths; a path the branch does not have is an error in the policy."""
    paths = policy.spec.git.paths
    try:
        targets = scan_paths(checkout.root, paths, cache=cache)
    except MissingPathError as exc:
        index = paths.index(exc.where) if exc.where in paths else None
        pointer = "/spec/git/paths" + (f"/{index}" if index is not None else "")
        raise ConfigError(
            f"{exc.where!r} does not exist on branch {policy.spec.git.branch} (at {checkout.head[:12]}); "
            "fix the path or add it to the branch",
            where=policy.where(pointer),
        ) from exc
    if cache is not None:
        # The cache follows the tree: blobs no longer in it are dropped, new ones kept for the next cycle.
        cache.prune()
        with suppress(OSError):  # an unwritable cache only makes the next scan slower
            cache.save()
    return targets


def gather(
    policy: Policy,
    checkout: Checkout,
    registry: Registry,
    cache: ScanCache | None = None,
    progress: Callable[[str], None] = lambda _stage: None,
) -> tuple[list[Target], dict[str, str], History, dict[str, Sequence[str]]]:
    """Scan the working copy, read history and list tags: everything the planner needs."""
    progress("scan")
    targets = scan_checkout(policy, checkout, cache)
    texts = {file: read_exact(checkout.root / file) for file in sorted({t.file for t in targets})}
    progress("history")
    history = read_history(checkout.log(), policy.name)
    tags: dict[str, Sequence[str]] = {}
    for image in policy.spec.images:
        progress(f"tags {image.name}")
        tags[image.name] = registry.list_tags(image.repository)
    return targets, texts, history, tags


@dataclass(frozen=True)
class CyclePlan:
    plans: tuple[Plan, ...]
    canaries: tuple[CanaryOutcome, ...]


def observe(policy: Policy, route: RouteState, history: History, metrics: Metrics, now: datetime) -> Observation:
    """Measure one canary now: the analysis, the canary's share of traffic, when the step took effect, a chart."""
    if route.weight == 0:
        return Observation(None, None, None)
    canary = route.canary
    spec = analysis_spec(route)
    hist = canary_history(history, canary)
    if route.weight >= 100:
        # GA takes no traffic: compare with GA's own figures from the window before the step to 100% landed.
        reference = read_ga_reference(spec, metrics, hist.full_at)
        analysis = run_full_weight_analysis(spec, metrics, now, reference)
    else:
        analysis = run_analysis(spec, metrics, now)
    share = observed_canary_share(spec, metrics, now)
    last_step_at = hist.last_step_at
    # No step in history (weights set by hand, or beyond the log read): only the traffic can tell how long
    # the weight has held, so look back one dwell and window; otherwise the dwell would be skipped.
    since = last_step_at if last_step_at is not None else now - canary.interval - spec.window
    applied = share_applied_at(spec, metrics, route.weight, canary.traffic_tolerance, since=since, at=now)
    canary_series, stable_series = latency_series(spec, metrics, now - spec.window, now, spec.window / 20)
    return Observation(analysis, share, applied, render_latency_chart(canary_series, stable_series))


def plan_cycle(policy: Policy, checkout: Checkout, deps: Deps, *, chain: bool) -> CyclePlan:
    """Gather and plan: image updates first, then every canary on the files as those leave them."""
    targets, texts, history, tags = gather(policy, checkout, deps.registry, deps.scan_cache, deps.progress)
    deps.progress("plan")
    plans = plan_images(policy, targets, texts, tags, history, chain=chain)
    if not policy.spec.canaries:
        return CyclePlan(tuple(plans), ())
    routes = {canary.name: read_route(policy, index, targets) for index, canary in enumerate(policy.spec.canaries)}
    plans = restart_on_new_image(policy, plans, routes, texts, chain=chain)
    current = dict(texts)
    if chain:
        for plan in plans:
            current.update(dict(plan.files))
    now = deps.clock.now()
    observations: dict[str, Observation] = {}
    if deps.metrics is not None:
        for canary in policy.spec.canaries:
            deps.progress(f"analysis {canary.name}")
            observations[canary.name] = observe(policy, routes[canary.name], history, deps.metrics(canary), now)
    # A commit changes the canary's image this cycle, so the analysis of the old one decides nothing; a pull
    # request only proposes it, and the canary on the branch is still the one to step or roll back.
    busy = {value for plan in plans for key, value in plan.trailers if key == TRAILER_TARGET} if chain else set()
    outcomes = plan_canaries(policy, targets, current, history, routes, observations, now, busy_images=busy)
    plans += [outcome.plan for outcome in outcomes if outcome.plan is not None]
    return CyclePlan(tuple(plans), tuple(outcomes))


def unified_diff(root: Path, plans: Sequence[Plan], *, chain: bool = True) -> str:
    """A unified diff of every plan against the working copy.

    With `chain` the plans apply in order (commits on one branch); without, each starts from the working
    copy, as each pull request starts from the branch.
    """
    current: dict[str, str] = {}
    out: list[str] = []
    for plan in plans:
        for file, new in plan.files:
            old = current.get(file) if chain else None
            if old is None:
                old = read_exact(root / file)
            for line in difflib.unified_diff(_lines(old), _lines(new), f"a/{file}", f"b/{file}"):
                # As git writes it: a last line without a newline is marked, not run into the next line.
                out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
            current[file] = new
    return "".join(out)


def _lines(text: str) -> list[str]:
    """`text` in lines as git counts them: split after each LF only, so a CR stays at its line's end and
    characters `str.splitlines` also breaks at (form feed, U+2028, ...) stay inside their line."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def run_cycle(policy: Policy, deps: Deps, *, deliver: bool) -> CycleResult:
    """Run one cycle; with `deliver` False it stops after planning and returns the plans and their diff."""
    pull_requests = policy.spec.delivery.mode == "pull-request"
    if pull_requests and deliver and deps.forge is None:
        raise ConfigError("pull-request delivery needs a forge (spec.delivery.github)", where=policy.source)
    attempts = policy.spec.git.max_push_attempts
    deps.progress("checkout")
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
            cycle = plan_cycle(policy, checkout, deps, chain=not pull_requests)
            plans = cycle.plans
            diff = unified_diff(checkout.root, plans, chain=not pull_requests)
            head = checkout.head
            if not deliver:
                deliveries = tuple(Delivery(p.name, "planned", p.plan_id, p.subject) for p in plans)
                return CycleResult(policy.name, plans, deliveries, diff, attempt, head, cycle.canaries)
            deps.progress("deliver")
            if pull_requests:
                assert deps.forge is not None
                delivered = deliver_pull_requests(policy, checkout, deps.forge, plans)
                return CycleResult(policy.name, plans, tuple(delivered), diff, attempt, head, cycle.canaries)
            try:
                delivered = deliver_commits(policy, checkout, plans)
            except PushRejectedError:
                if attempt == attempts:
                    raise
                deps.log(
                    f"push to {policy.spec.git.branch} rejected; fetching and planning again ({attempt}/{attempts})"
                )
                checkout.refresh()
                continue
            return CycleResult(policy.name, plans, tuple(delivered), diff, attempt, checkout.head, cycle.canaries)
    raise GitbotError("unreachable: the cycle loop ended without a result")


def commit_plan(policy: Policy, checkout: Checkout, plan: Plan) -> str:
    """Commit one plan: a `git revert` when it reverts commits, its edited files when that conflicts.

    A canary's rollback ends at 0% in either case: what its revert restores is set to 0% in the same commit.
    """
    message = render_message(plan.subject, plan.body, plan.trailers)
    if plan.reverts:
        finish = rollback_finish(policy, checkout, plan)
        sha = checkout.revert(plan.reverts, message, author_of(policy), finish)
        if sha is not None:
            return sha
        if not plan.files:
            raise GitError(
                f"reverting {', '.join(s[:7] for s in plan.reverts)} conflicts with later changes",
                hint="revert it by hand and resolve the conflict; gitbot quarantines the tag it sees reverted",
            )
        if finish is not None:
            message = rollback_commit_message(plan)
    return checkout.commit(dict(plan.files), message, author_of(policy))


def rollback_finish(policy: Policy, checkout: Checkout, plan: Plan) -> RevertFinish | None:
    """For a canary's rollback (one that moves weights): read the route its revert leaves and settle it at 0%.

    A reverted tree whose route cannot be read gives the revert up: the plan's own files, made from the
    branch before the revert, set the weights to 0% instead.
    """
    names = [canary.name for canary in policy.spec.canaries]
    target = dict(plan.trailers).get(TRAILER_TARGET)
    if plan.action != "rollback" or not plan.files or target not in names:
        return None
    index = names.index(target)

    def finish() -> tuple[dict[str, str], str] | None:
        try:
            route = read_route(policy, index, scan_checkout(policy, checkout))
            texts = {group.file: read_exact(checkout.root / group.file) for group in route.groups}
            return settle_rollback(plan, route, texts)
        except GitbotError:
            return None

    return finish


def deliver_commits(policy: Policy, checkout: Checkout, plans: Sequence[Plan]) -> list[Delivery]:
    """Commit every plan on the working branch and push once; PushRejectedError leaves nothing pushed."""
    if not plans:
        return []
    base = checkout.head
    delivered = []
    for plan in plans:
        sha = commit_plan(policy, checkout, plan)
        delivered.append(Delivery(plan.name, "committed", sha, plan.subject))
    try:
        checkout.push()
    except PushRejectedError:
        checkout.reset(base)
        raise
    return delivered


def pull_request_text(policy: Policy, plan: Plan) -> str:
    is_image = plan.action == "image-update"
    # `gitbot rollback` takes an image or canary name; the one change of `group: all` is named after neither.
    names = [value for key, value in plan.trailers if key == TRAILER_TARGET] or [plan.name]
    every = f" (it reverts the whole change: {', '.join(names)})" if len(names) > 1 and is_image else ""
    rollback = (
        "Close this pull request to skip this change for now. After merging, revert the merge "
        "(GitHub's Revert button or `git revert`) or run "
        f"`gitbot rollback {names[0]} --policy {policy.name}`{every}: "
        "the reverted tag is quarantined and not proposed again."
    )
    return pull_request_body(
        summary=f"gitbot proposes this change for policy **{policy.name}**.",
        changes=plan.changes,
        why=plan.evidence if is_image else "",
        evidence="" if is_image else plan.evidence,
        rollback=rollback,
        plan=plan.plan_id,
    )


def deliver_pull_requests(
    policy: Policy,
    checkout: Checkout,
    forge: Forge,
    plans: Sequence[Plan],
    *,
    close_superseded: bool = True,
    honour_closed: bool = True,
) -> list[Delivery]:
    """One pull request per plan on `gitbot/<policy>/<name>`, updated in place; superseded ones closed.

    Pull requests opened by hand-run commands (`rollback-*`, `promote-*`) are left for a person to merge or close.
    With `honour_closed`, a plan whose pull request a person closed unmerged is skipped until it changes.
    """
    github = policy.spec.delivery.github
    labels = github.labels if github else ()
    base = checkout.head
    open_before = {pr.head: pr for pr in forge.open_pulls(f"gitbot/{policy.name}/")}
    delivered: list[Delivery] = []
    wanted: set[str] = set()
    for plan in plans:
        branch = bot_branch(policy, plan.name)
        wanted.add(branch)
        existing: PullRequest | None = open_before.get(branch) or forge.find_pull(branch)
        if existing is not None and plan_id_in(existing.body) == plan.plan_id:
            delivered.append(Delivery(plan.name, "unchanged", existing.url, plan.subject))
            continue
        refused = forge.closed_pull(branch) if existing is None and honour_closed else None
        if refused is not None and plan_id_in(refused.body) == plan.plan_id:
            delivered.append(Delivery(plan.name, "skipped", refused.url, plan.subject))
            continue
        sha = commit_plan(policy, checkout, plan)
        try:
            checkout.push_branch(branch, sha)
        finally:
            checkout.reset(base)
        body = pull_request_text(policy, plan)
        if existing is not None:
            pr = forge.update_pull(existing.number, plan.subject, body)
            delivered.append(Delivery(plan.name, "updated", pr.url, plan.subject))
        else:
            pr = forge.create_pull(branch, policy.spec.git.branch, plan.subject, body, labels)
            delivered.append(Delivery(plan.name, "opened", pr.url, plan.subject))
    for head, pr in sorted(open_before.items()) if close_superseded else ():
        manual = head.rsplit("/", 1)[-1].startswith((MANUAL_PREFIX, PROMOTE_PREFIX))
        marker = PLAN_MARKER.split("{")[0]
        if head not in wanted and not manual and (marker in pr.body or SUPERSEDED_MARKER in pr.body):
            # Unmark the plan first: a pull request the bot closed is not a person's refusal of it.
            forge.update_pull(pr.number, pr.title, pr.body.replace(marker, SUPERSEDED_MARKER))
            forge.close_pull(
                pr.number,
                "gitbot: closing, this change is no longer needed "
                "(the branch already has it, or a newer plan replaced it).",
            )
            delivered.append(Delivery(head.rsplit("/", 1)[-1], "closed", pr.url, pr.title))
    return delivered


@dataclass(frozen=True)
class ImageStatus:
    name: str
    current: tuple[str, ...]
    newest: str | None
    candidates: tuple[str, ...]
    quarantined: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StatusReport:
    policy: str
    head: str
    images: tuple[ImageStatus, ...]
    pulls: tuple[PullRequest, ...]


def status(policy: Policy, deps: Deps) -> StatusReport:
    """Per image: the tags running now, the newest allowed tag, quarantined tags and why; open PRs."""
    with deps.workspace.checkout() as checkout:
        targets, _texts, history, tags = gather(policy, checkout, deps.registry, deps.scan_cache)
        head = checkout.head
    images = []
    for index, binding in enumerate(bind_images(policy, targets)):
        image = binding.image
        flt = image_filter(policy, index)
        quarantined = history.quarantined(image.name)
        selection = select(tags.get(image.name, ()), flt, quarantine=quarantined.keys())
        current = tuple(sorted({current_tag(t) or "(none)" for t in binding.targets}))
        blocked = behind_quarantine(tags.get(image.name, ()), flt, selection)
        images.append(
            ImageStatus(
                image.name,
                current,
                None if blocked else selection.selected,
                selection.candidates,
                tuple((tag, q.reason) for tag, q in sorted(quarantined.items())),
            )
        )
    pulls: tuple[PullRequest, ...] = ()
    if deps.forge is not None:
        pulls = tuple(deps.forge.open_pulls(f"gitbot/{policy.name}/"))
    return StatusReport(policy.name, head, tuple(images), pulls)


def deliver_one(policy: Policy, deps: Deps, make: Callable[[Checkout], Plan], *, branch_name: str) -> Delivery:
    """Make one plan on a fresh checkout and deliver it by the policy's mode, re-planning on a rejected push.

    Pull-request mode uses `gitbot/<policy>/<branch_name>` and leaves the bot's other pull requests alone.
    """
    attempts = policy.spec.git.max_push_attempts
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
            plan = replace(make(checkout), name=branch_name)
            if policy.spec.delivery.mode == "pull-request":
                if deps.forge is None:
                    raise ConfigError("pull-request delivery needs a forge (spec.delivery.github)", where=policy.source)
                # Run by hand: a person asking again overrides their earlier closing of the pull request.
                return deliver_pull_requests(
                    policy, checkout, deps.forge, [plan], close_superseded=False, honour_closed=False
                )[0]
            try:
                return deliver_commits(policy, checkout, [plan])[0]
            except PushRejectedError:
                if attempt == attempts:
                    raise
                checkout.refresh()
    raise GitbotError("unreachable: the delivery loop ended without a result")


def rollback(policy: Policy, deps: Deps, name: str) -> Delivery:
    """Revert the newest standing bot change for `name` with `git revert`, by the policy's delivery mode.

    The tags that change introduced are quarantined through the rollback commit's trailers.
    """

    def make(checkout: Checkout) -> Plan:
        history = read_history(checkout.log(), policy.name)
        standing = history.revertible(name)
        if not standing:
            raise UsageError(
                f"policy {policy.name} has no standing gitbot change for {name!r} to roll back",
                hint=f"gitbot status --policy {policy.name} shows what the bot changed",
            )
        victim = standing[0]
        mine = [c for c in victim.changes if c.target == name] or list(victim.changes)
        quarantine = [(c.target, c.new) for c in victim.changes] if victim.action == "image-update" else []
        subject = f"gitbot({policy.name}): roll back {name} {mine[0].new} -> {mine[0].old}"
        pid = plan_id(policy.name, name, "rollback", [])[:8] + victim.sha[:8]
        body = (
            f"This reverts commit {victim.sha}.\n\n"
            f"Rolled back on request (gitbot rollback {name} --policy {policy.name})."
            + (f" Quarantined: {', '.join(f'{t}={tag}' for t, tag in quarantine)}." if quarantine else "")
        )
        trailers = rollback_trailers(policy.name, name, mine[0].new, mine[0].old, pid, quarantine)
        return Plan(policy.name, name, "rollback", (), (), subject, body, trailers, pid, body, reverts=(victim.sha,))

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
    with deps.workspace.checkout() as checkout:
        targets = scan_checkout(policy, checkout, deps.scan_cache)
        history = read_history(checkout.log(), policy.name)
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


def promote(policy: Policy, deps: Deps, name: str, to: int | None = None) -> Delivery:
    """Make the canary's next step (or move it to `to`) by hand, whatever the analysis says."""
    index = _canary_index(policy, name)
    canary = policy.spec.canaries[index]
    if to == 0:
        # A step to 0 is no rollback: nothing would hold the canary there, the next cycle starts it again.
        raise UsageError(
            f"--to 0 would not keep canary {name} at 0%: the next cycle starts it again",
            hint=f"roll it back with `gitbot rollback {name} --policy {policy.name}` "
            f"or hold it with `gitbot pause {name}`",
        )

    def make(checkout: Checkout) -> Plan:
        targets = scan_checkout(policy, checkout, deps.scan_cache)
        texts = {file: read_exact(checkout.root / file) for file in sorted({t.file for t in targets})}
        route = read_route(policy, index, targets)
        target = to if to is not None else canary_policy(canary).next_step(route.weight)
        if target is None:
            raise UsageError(f"canary {name} is already at its last step ({route.weight}%); give --to to move it")
        if not 0 <= target <= 100 or target == route.weight:
            raise UsageError(f"--to must be a weight in 0..100 other than the current {route.weight}%, got {target}")
        decision = CanaryDecision("step", route.weight, target, f"stepped by hand from {route.weight}% to {target}%")
        return step_plan(policy, route, decision, Observation(None, None, None), texts, to=target, manual=True)

    # Its own branch: a person's step is not the cycle's plan, which would close or rewrite it.
    return deliver_one(policy, deps, make, branch_name=f"{PROMOTE_PREFIX}{name}")


def set_paused(policy: Policy, deps: Deps, name: str, *, paused: bool, why: str = "") -> str:
    """Record a pause or resume of canary `name` as a marker commit on the policy's branch (commit sha)."""
    _canary_index(policy, name)
    action = "pause" if paused else "resume"
    message = marker_message(policy, name, action, why or f"{action}d by gitbot {action} {name}")
    attempts = policy.spec.git.max_push_attempts
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
            base = checkout.head
            sha = checkout.record(message, author_of(policy))
            try:
                checkout.push()
            except PushRejectedError:
                checkout.reset(base)
                if attempt == attempts:
                    raise
                checkout.refresh()
                continue
            return sha
    raise GitbotError("unreachable: the marker loop ended without a result")
