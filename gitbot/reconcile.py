"""One reconcile cycle for one policy: checkout -> scan -> history -> gather -> plan -> deliver -> report.

The only module that sequences I/O, always through the ports in `gitbot.ports`; it builds no adapter.
Dry-run is "stop after planning". The environment branch is never force-pushed: a rejected push means
refresh from the remote, plan again from the new head and retry, a bounded number of times.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from gitbot.candidates import Vetting, narrow
from gitbot.config import GROUP_ALL_NAME, MANUAL_PREFIXES, CanarySettings, Policy, line_of, pointer_to_field
from gitbot.domain import Author, Plan, Target
from gitbot.errors import (
    ConfigError,
    DeadlineError,
    GitbotError,
    GitError,
    MissingPathError,
    PushRejectedError,
    RegistryError,
    RemoteError,
    UsageError,
)
from gitbot.history import TRAILER_FROM, TRAILER_TARGET, TRAILER_TO, BotCommit, History, read_history
from gitbot.manifests import Problem, ScanCache, scan_files
from gitbot.messages import (
    KIND_HAND_ROLLBACK,
    KIND_ROLLBACK,
    PLAN_MARKER,
    plan_id,
    plan_id_in,
    plan_kind,
    pull_request_body,
    pull_request_summary,
    render_message,
    rollback_trailers,
    rolling_back_text,
    undone_table,
    without_reverts_paragraph,
)
from gitbot.planner import (
    CanaryOutcome,
    LookupFailure,
    admitted_tags,
    behind_quarantine,
    bind_images,
    current_tag,
    held_downgrades,
    image_filter,
    lookup_failures,
    plan_canaries,
    plan_images,
)
from gitbot.ports import Checkout, Clock, Forge, Metrics, PullRequest, Registry, RevertFinish, Workspace
from gitbot.promotion import CanaryGate, Gate, held_back, judge_gate, unreadable_gate
from gitbot.rollout import (
    Observation,
    RouteState,
    analysis_spec,
    apply_changes,
    canary_history,
    canary_policy,
    default_marker_reason,
    marker_message,
    observe_state,
    read_route,
    restart_on_new_image,
    rollback_commit_message,
    settle_rollback,
    step_plan,
)
from gitbot.tagfacts import promotion_pins, vet_images
from gitbot.texts import TextsOnDemand
from gitbot.versioning import TagFilter, select

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
    # Images whose tag lookup failed: left as they are while everything else was planned and delivered.
    failures: tuple[LookupFailure, ...] = ()
    # Files the scan could not take in, and what could not be planned because of them; the rest went on.
    problems: tuple[Problem, ...] = ()
    # The bot's history as the cycle read it before delivering, for what notifications tell (reverts, times).
    history: History | None = None


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
    # Seconds that only go forward, for the cycle's deadline (tests drive it; the Clock may be accelerated).
    monotonic: Callable[[], float] = time.monotonic
    # The branches of the earlier environments that promotion gates name, by policy name (read, never written).
    gates: Mapping[str, Workspace] = field(default_factory=dict)


def author_of(policy: Policy) -> Author:
    return Author(policy.spec.git.author.name, policy.spec.git.author.email)


def bot_branch(policy: Policy, name: str) -> str:
    return f"gitbot/{policy.name}/{name}"


def read_exact(path: Path) -> str:
    """A file's text with its line endings untouched (text mode would turn CRLF into LF)."""
    return path.read_bytes().decode("utf-8")


def read_texts(checkout: Checkout, files: Collection[str]) -> dict[str, str]:
    """The text of `files` in the working copy (line endings untouched), sorted by path."""
    data = checkout.read(sorted(files))
    return {file: data[file].decode("utf-8") for file in sorted(files)}


def scan_checkout(
    policy: Policy,
    checkout: Checkout,
    cache: ScanCache | None = None,
    problems: list[Problem] | None = None,
    texts: TextsOnDemand | None = None,
) -> list[Target]:
    """The targets under the policy's paths; a path the branch does not have is an error in the policy.

    Files too large to read are skipped and added to `problems` (when given). `texts` (when given) gets the
    text of every file holding a target, as the scan read it.
    """
    paths = policy.spec.git.paths
    try:
        files = checkout.files(paths)
        scan = scan_files(
            files,
            checkout.read,
            cache=cache,
            max_file_size=policy.spec.git.max_file_size,
            keep_texts=texts is not None,
        )
        targets = list(scan.targets)
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
    if problems is not None:
        problems.extend(scan.problems)
    if texts is not None:
        texts.update(scan.texts)
        # Files the cache knew were not read by the scan: those holding targets are read together when the
        # cycle first needs one (a cycle that changes nothing needs none).
        texts.read_later({t.file for t in targets})
    return targets


# Lookups of one cycle in flight at once; the registry adapter holds each host to its own, lower limit.
_LOOKUP_THREADS = 32


def _look_up_side_by_side(registry: Registry, repositories: Sequence[str]) -> dict[str, Sequence[str] | RemoteError]:
    """Each distinct repository's tags (or the error of its lookup), looked up side by side: independent
    images cost one round trip, not one each."""
    unique = list(dict.fromkeys(repositories))

    def one(repository: str) -> Sequence[str] | RemoteError:
        try:
            return registry.list_tags(repository)
        except RemoteError as exc:
            return exc

    if len(unique) <= 1:
        return {repository: one(repository) for repository in unique}
    with ThreadPoolExecutor(max_workers=min(len(unique), _LOOKUP_THREADS), thread_name_prefix="tags") as pool:
        return dict(zip(unique, pool.map(one, unique), strict=True))


def list_image_tags(
    policy: Policy, registry: Registry, progress: Callable[[str], None] = lambda _stage: None
) -> tuple[dict[str, Sequence[str]], tuple[LookupFailure, ...]]:
    """Every image's tags, each lookup on its own: a failing registry spoils only the images it serves.

    When every lookup failed and the policy has no canary, nothing is left for the cycle to do: it fails
    with that error as a whole (and the daemon backs off), rather than reporting an empty success.
    """
    tags: dict[str, Sequence[str]] = {}
    errors: dict[str, RemoteError] = {}
    for image in policy.spec.images:
        progress(f"tags {image.name}")
    answers = _look_up_side_by_side(registry, [image.repository for image in policy.spec.images])
    for image in policy.spec.images:
        answer = answers[image.repository]
        if isinstance(answer, RemoteError):
            errors[image.name] = answer
        else:
            tags[image.name] = answer
    failures = tuple(
        replace(failure, retryable=errors[failure.image].retryable, exit_code=errors[failure.image].exit_code)
        for failure in lookup_failures(policy, {name: exc.one_line() for name, exc in errors.items()})
    )
    if errors and not tags and not policy.spec.canaries:
        if len(errors) == 1:
            raise next(iter(errors.values()))
        raise RegistryError("; ".join(f.one_line() for f in failures), hint="retry later")
    return tags, failures


def gather(
    policy: Policy,
    checkout: Checkout,
    registry: Registry,
    cache: ScanCache | None = None,
    progress: Callable[[str], None] = lambda _stage: None,
    problems: list[Problem] | None = None,
) -> tuple[list[Target], Mapping[str, str], History, dict[str, Sequence[str]], tuple[LookupFailure, ...]]:
    """Scan the working copy, read history and list tags: everything the planner needs, and failed lookups."""
    progress("scan")
    texts = TextsOnDemand(lambda files: read_texts(checkout, files))
    # Each manifest is read at most once a cycle: the planner edits the texts the scan read.
    targets = scan_checkout(policy, checkout, cache, problems, texts)
    progress("history")
    history = read_history(checkout.log(), policy.name)
    tags, failures = list_image_tags(policy, registry, progress)
    return targets, texts, history, tags, failures


def read_gates(policy: Policy, deps: Deps, checkout: Checkout, now: datetime) -> dict[str, Gate]:
    """The promotion gate of each gated image, from its earlier environment's branch (read once per policy).

    An environment that cannot be read gives a gate that holds every tag, and says why.
    """
    histories: dict[str, History | str] = {}
    gates: dict[str, Gate] = {}
    for image in policy.spec.images:
        gate = image.promotion
        if gate is None:
            continue
        if gate.policy not in histories:
            histories[gate.policy] = _gate_history(policy, deps, checkout, gate.policy)
        history = histories[gate.policy]
        if isinstance(history, str):
            gates[image.name] = unreadable_gate(gate.after, gate.policy, history)
            continue
        earlier = policy.upstream[gate.policy]
        canary = next((CanaryGate(c.name, c.steps[-1]) for c in earlier.spec.canaries if c.image == gate.image), None)
        soak = gate.soak or timedelta(0)
        gates[image.name] = judge_gate(gate.after, gate.policy, gate.image, history, now, soak=soak, canary=canary)
    return gates


def _gate_history(policy: Policy, deps: Deps, checkout: Checkout, name: str) -> History | str:
    """The History of policy `name` read from its branch, or why it cannot be read."""
    earlier = policy.upstream.get(name)
    if earlier is None:
        return f"policy {name} was not loaded with {policy.name}: load the policies directory that holds both"
    own, other = policy.spec.git, earlier.spec.git
    if (other.url, other.branch) == (own.url, own.branch):
        return read_history(checkout.log(), name)
    workspace = deps.gates.get(name)
    if workspace is None:
        return f"no workspace for branch {other.branch} of policy {name}"
    deps.progress(f"gate {name}")
    try:
        with workspace.checkout() as theirs:
            return read_history(theirs.log(), name)
    except GitbotError as exc:
        return f"branch {other.branch}: {exc.one_line()}"


@dataclass(frozen=True)
class CyclePlan:
    plans: tuple[Plan, ...]
    canaries: tuple[CanaryOutcome, ...]
    failures: tuple[LookupFailure, ...] = ()
    problems: tuple[Problem, ...] = ()
    # The files as the cycle read them (those holding targets): what the plans' diffs start from.
    texts: Mapping[str, str] = field(default_factory=dict)
    history: History | None = None


def observe(policy: Policy, route: RouteState, history: History, metrics: Metrics, now: datetime) -> Observation:
    """Measure one canary now: the analysis, the canary's share of traffic, when the step took effect, a chart."""
    if route.weight == 0:
        return Observation(None, None, None)
    canary = route.canary
    spec = analysis_spec(route)
    hist = canary_history(history, canary)
    # Sequential checks count from when the step (or a newer canary image) landed, read from git: no state.
    # Without a step in history, from one dwell and window back, as the share below.
    landed = max((t for t in (hist.last_step_at, hist.tag_changed_at) if t is not None), default=None)
    if route.weight >= 100:
        # GA takes no traffic: compare with GA's own figures from the window before the step to 100% landed.
        reference = read_ga_reference(spec, metrics, hist.full_at)
        # Sequential checks: the canary's counts since the step to 100% (or a newer canary image), GA's over
        # the period before it, from the previous move of the weights.
        full_since = max((t for t in (hist.full_at, hist.tag_changed_at) if t is not None), default=None)
        analysis = run_full_weight_analysis(
            spec, metrics, now, reference, since=full_since, before_full_at=hist.before_full_at
        )
    else:
        analysis = run_analysis(spec, metrics, now, since=landed or now - canary.interval - spec.window)
    share = observed_canary_share(spec, metrics, now)
    last_step_at = hist.last_step_at
    # No step in history (weights set by hand, or beyond the log read): only the traffic can tell how long
    # the weight has held, so look back one dwell and window; otherwise the dwell would be skipped.
    since = last_step_at if last_step_at is not None else now - canary.interval - spec.window
    applied = share_applied_at(spec, metrics, route.weight, canary.traffic_tolerance, since=since, at=now)
    canary_series, stable_series = latency_series(spec, metrics, now - spec.window, now, spec.window / 20)
    return Observation(analysis, share, applied, render_latency_chart(canary_series, stable_series, spec.checks))


def plan_cycle(policy: Policy, checkout: Checkout, deps: Deps, *, chain: bool) -> CyclePlan:
    """Gather and plan: image updates first, then every canary on the files as those leave them."""
    problems: list[Problem] = []
    targets, texts, history, tags, failures = gather(
        policy, checkout, deps.registry, deps.scan_cache, deps.progress, problems=problems
    )
    policy = set_aside_unbound(policy, targets, problems)
    gates = read_gates(policy, deps, checkout, deps.clock.now())
    # Bound once a cycle: thousands of targets are matched to their image policies once, not at each step.
    bindings = bind_images(policy, targets)
    # Release age, signatures and digests are asked only of the tags the promotion gate lets through.
    admitted = {
        binding.image.name: admitted_tags(binding, tags.get(binding.image.name, ()), gates.get(binding.image.name))
        for binding in bindings
    }
    vetted, unvetted = vet_images(policy, deps.registry, targets, admitted, history, deps.clock.now(), bound=bindings)
    failures += unvetted
    deps.progress("plan")
    plans = plan_images(
        policy, targets, texts, tags, history, chain=chain, gates=gates, vetted=vetted, bindings=bindings
    )
    problems += held_downgrades(policy, targets, tags, history, bindings)
    if not policy.spec.canaries:
        return CyclePlan(tuple(plans), (), failures, tuple(problems), texts, history)
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
    pending = {} if chain else proposed_canary_images(policy, plans, deps.forge)
    pins = promotion_pins(policy, deps.registry, targets, routes)
    outcomes = plan_canaries(
        policy,
        targets,
        current,
        history,
        routes,
        observations,
        now,
        busy_images=busy,
        pending_images=pending,
        pins=pins,
    )
    plans += [outcome.plan for outcome in outcomes if outcome.plan is not None]
    return CyclePlan(tuple(plans), tuple(outcomes), failures, tuple(problems), texts, history)


def proposed_canary_images(policy: Policy, plans: Sequence[Plan], forge: Forge | None) -> dict[str, str]:
    """Canary images this pull-request cycle proposes, with why a step waits for each to land.

    A step proposed beside its image could be merged first and send traffic to the old image. An image
    whose pull request a person closed unmerged is not pending (it is skipped until its plan changes).
    """
    images = {canary.image for canary in policy.spec.canaries if canary.image}
    pending: dict[str, str] = {}
    for plan in plans:
        if plan.action != "image-update":
            continue
        changes = _trailer_changes(plan.trailers)
        mine = [(name, old, new) for name, old, new in changes if name in images and name not in pending]
        if not mine:
            continue
        if forge is not None and forge.find_pull(bot_branch(policy, plan.name)) is None:
            refused = forge.closed_pull(bot_branch(policy, plan.name))
            if refused is not None and plan_id_in(refused.body) == plan.plan_id:
                continue
        for name, old, new in mine:
            pending[name] = (
                f"canary image {name} {old} -> {new} is proposed in a pull request; the next step waits until it lands"
            )
    return pending


def _trailer_changes(trailers: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The (target, from, to) triples of a plan's trailers, in order."""
    targets = [value for key, value in trailers if key == TRAILER_TARGET]
    olds = [value for key, value in trailers if key == TRAILER_FROM]
    news = [value for key, value in trailers if key == TRAILER_TO]
    return [(t, olds[i] if i < len(olds) else "", news[i] if i < len(news) else "") for i, t in enumerate(targets)]


def unified_diff(
    root: Path | None, plans: Sequence[Plan], *, chain: bool = True, base: Mapping[str, str] | None = None
) -> str:
    """A unified diff of every plan against the working copy.

    With `chain` the plans apply in order (commits on one branch); without, each starts from the working
    copy, as each pull request starts from the branch. `base` holds texts of the working copy already read;
    with `root` None it holds every file the plans change.
    """
    current: dict[str, str] = {}
    out: list[str] = []
    for plan in plans:
        for file, new in plan.files:
            old = current.get(file) if chain else None
            if old is None:
                old = base.get(file) if base is not None else None
            if old is None:
                if root is None:
                    raise ValueError(f"no text of {file} to compare the plan with")
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
    undeadlined = deps
    deps = with_deadline(policy, deps)
    deps.progress("checkout")
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
            cycle = plan_cycle(policy, checkout, deps, chain=not pull_requests)
            plans = cycle.plans
            # From the texts the cycle read (a file a plan changes that held no target is read now): the diff
            # writes no working tree, and a commit writes only its own files.
            planned = {file for plan in plans for file, _text in plan.files}
            base = {file: cycle.texts[file] for file in planned if file in cycle.texts}
            base.update(read_texts(checkout, planned - base.keys()))
            diff = unified_diff(None, plans, chain=not pull_requests, base=base)
            head = checkout.head
            if not deliver:
                deliveries = tuple(Delivery(p.name, "planned", p.plan_id, p.subject) for p in plans)
                return CycleResult(
                    policy.name, plans, deliveries, diff, attempt, head, cycle.canaries, cycle.failures, cycle.problems
                )
            deps.progress("deliver")
            if pull_requests:
                assert deps.forge is not None
                safety = straight_rollbacks(policy, plans)
                rolled: list[Delivery] = []
                if safety:
                    try:
                        rolled = deliver_rollbacks(policy, checkout, deps.forge, safety, rollback_reasons(cycle))
                    except PushRejectedError as rejected:
                        refresh_after_rejection(policy, deps, checkout, rejected, attempt, attempts)
                        continue
                    # The rest is planned again from the branch as the rollbacks left it (no deadline: the
                    # rollbacks are delivered, and a cycle past it must not say nothing was).
                    again = plan_cycle(policy, checkout, undeadlined, chain=False)
                    cycle, plans = after_rollbacks(cycle, safety, again), again.plans
                delivered = deliver_pull_requests(
                    policy, checkout, deps.forge, plans, keep=unplanned_by_failure(policy, cycle.failures)
                )
                return CycleResult(
                    policy.name,
                    (*safety, *plans),
                    (*rolled, *delivered),
                    diff,
                    attempt,
                    checkout.head if safety else head,
                    cycle.canaries,
                    cycle.failures,
                    cycle.problems,
                    cycle.history,
                )
            try:
                delivered = deliver_commits(policy, checkout, plans)
            except PushRejectedError as rejected:
                refresh_after_rejection(policy, deps, checkout, rejected, attempt, attempts)
                continue
            return CycleResult(
                policy.name,
                plans,
                tuple(delivered),
                diff,
                attempt,
                checkout.head,
                cycle.canaries,
                cycle.failures,
                cycle.problems,
                cycle.history,
            )
    raise GitbotError("unreachable: the cycle loop ended without a result")


def straight_rollbacks(policy: Policy, plans: Sequence[Plan]) -> tuple[Plan, ...]:
    """The canary rollbacks a pull-request cycle pushes straight to the branch: a failing canary keeps its
    traffic while a rollback waits for a review, so it does not wait unless `delivery.rollback` asks it to."""
    if policy.spec.delivery.rollback == "pull-request":
        return ()
    canaries = {canary.name for canary in policy.spec.canaries}
    return tuple(plan for plan in plans if plan.action == "rollback" and plan.name in canaries)


def after_rollbacks(before: CyclePlan, rollbacks: Sequence[Plan], again: CyclePlan) -> CyclePlan:
    """The cycle's plan once its rollbacks landed: them, then what planning again from the new head gave.

    The rolled-back canaries keep the outcome that rolled them back (that is what this cycle did).
    """
    names = {plan.name for plan in rollbacks}
    canaries = tuple(o for o in before.canaries if o.name in names) + tuple(
        o for o in again.canaries if o.name not in names
    )
    return CyclePlan((*rollbacks, *again.plans), canaries, again.failures, again.problems)


def rollback_reasons(cycle: CyclePlan) -> dict[str, str]:
    """Why each canary of the cycle is rolled back, in a few words (`its analysis failed at 10% (...)`)."""
    reasons = {}
    for outcome in cycle.canaries:
        if outcome.decision is not None and outcome.decision.action == "rollback":
            summary = f" ({outcome.summary})" if outcome.summary else ""
            reasons[outcome.name] = f"its analysis failed at {outcome.weight}%{summary}"
    return reasons


def deliver_rollbacks(
    policy: Policy, checkout: Checkout, forge: Forge, rollbacks: Sequence[Plan], reasons: Mapping[str, str]
) -> list[Delivery]:
    """Push canary rollbacks to the environment branch in pull-request mode, then tell the bot's open pull
    requests for those canaries: the cycle's step is closed (it would move a rolled-back canary), a step or
    rollback asked for by hand is left open for its person. PushRejectedError leaves nothing pushed."""
    delivered = deliver_commits(policy, checkout, rollbacks)
    branch = policy.spec.git.branch
    out: list[Delivery] = []
    for plan, done in zip(rollbacks, delivered, strict=True):
        out.append(done)
        why = reasons.get(plan.name, "its analysis failed")
        note = (
            f"gitbot rolled back canary {plan.name} on {branch} in {done.ref[:7]} without waiting for a review: "
            f"{why}. A failing canary keeps its traffic while a pull request waits, so rollbacks are pushed "
            "straight to the branch (`delivery.rollback: pull-request` makes them wait for a review instead)."
        )
        for suffix in ("", MANUAL_PREFIX, PROMOTE_PREFIX):
            pull = forge.find_pull(bot_branch(policy, f"{suffix}{plan.name}"))
            if pull is None:
                continue
            if suffix:
                forge.comment_pull(pull.number, note)
                continue
            marker = PLAN_MARKER.split("{")[0]
            # Unmarked first, as a superseded one: a pull request the bot closed is not a person's refusal.
            forge.update_pull(pull.number, pull.title, pull.body.replace(marker, SUPERSEDED_MARKER))
            forge.close_pull(pull.number, f"{note} This step is no longer wanted; closing.")
            out.append(Delivery(plan.name, "closed", pull.url, pull.title))
    return out


def refresh_after_rejection(
    policy: Policy, deps: Deps, checkout: Checkout, rejected: PushRejectedError, attempt: int, attempts: int
) -> None:
    """After a rejected push to the branch: `rejected` again on the last attempt, else fetch the new head."""
    if attempt == attempts:
        raise rejected
    deps.log(f"push to {policy.spec.git.branch} rejected; fetching and planning again ({attempt}/{attempts})")
    checkout.refresh()


def unplanned_by_failure(policy: Policy, failures: Sequence[LookupFailure]) -> frozenset[str]:
    """Pull requests a failed tag lookup leaves unplanned, not unneeded: they stay open as they are."""
    if not failures:
        return frozenset()
    if policy.spec.delivery.group == "all":
        return frozenset({GROUP_ALL_NAME})
    return frozenset(failure.image for failure in failures)


def with_deadline(policy: Policy, deps: Deps) -> Deps:
    """`deps` whose stage reports first check the cycle's deadline (`spec.timeout`, counted from now).

    Stages are reported before each step up to and including `deliver`, so a cycle past its deadline stops
    before its first commit or push: nothing is half-written or half-pushed. Delivery itself, once begun,
    runs to its end (each remote call has its own timeout).
    """
    limit = policy.spec.timeout
    ends = deps.monotonic() + limit.total_seconds()
    report = deps.progress

    def check_then_report(stage: str) -> None:
        if deps.monotonic() > ends:
            raise DeadlineError(
                f"policy {policy.name}: the cycle ran past its {_seconds(limit)} deadline before {stage}; "
                "nothing delivered",
                hint="raise spec.timeout, or find the slow step in the log (registry, Prometheus, git)",
            )
        report(stage)

    return replace(deps, progress=check_then_report)


def _seconds(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if minutes and rest else f"{minutes}m" if minutes else f"{rest}s"


def set_aside_unbound(policy: Policy, targets: Sequence[Target], problems: list[Problem]) -> Policy:
    """`policy` without the images and canaries whose named target was not found while files were skipped.

    The target may live in a file that was not read; each one set aside becomes a Problem at its place in
    the policy file, and the rest of the policy is planned. Without problem files nothing is set aside (a
    missing target is then a mistake in the policy, reported by the planner as before).
    """
    if not problems:
        return policy
    skipped = ", ".join(problem.file for problem in problems)
    spec = policy.spec
    dropped_images: set[str] = set()
    for index, image in enumerate(spec.images):
        for t_index, named in enumerate(image.targets):
            if not any(
                t.resource == named.resource
                and t.kind == "image"
                and (named.container is None or t.container == named.container)
                for t in targets
            ):
                pointer = f"/spec/images/{index}/targets/{t_index}"
                problems.append(
                    _policy_problem(policy, pointer, f"image {image.name}: {named.resource} not found", skipped)
                )
                dropped_images.add(image.name)
                break
    dropped_canaries: set[str] = set()
    for index, canary in enumerate(spec.canaries):
        why = ""
        if not any(t.resource == canary.route and t.kind == "weight" for t in targets):
            why, pointer = f"canary {canary.name}: {canary.route} not found", f"/spec/canaries/{index}/route"
        elif {canary.image, canary.promote_to} & dropped_images:
            name = canary.image if canary.image in dropped_images else canary.promote_to
            why, pointer = f"canary {canary.name}: its image {name} is set aside", f"/spec/canaries/{index}"
        if why:
            problems.append(_policy_problem(policy, pointer, why, skipped))
            dropped_canaries.add(canary.name)
    if not dropped_images and not dropped_canaries:
        return policy
    images = tuple(i for i in spec.images if i.name not in dropped_images)
    canaries = tuple(c for c in spec.canaries if c.name not in dropped_canaries)
    lines = _renumber_lines(policy, "images", [i.name for i in spec.images], dropped_images)
    lines = _renumber_lines(policy, "canaries", [c.name for c in spec.canaries], dropped_canaries, lines)
    return policy.model_copy(
        update={"spec": spec.model_copy(update={"images": images, "canaries": canaries}), "lines": lines}
    )


def _policy_problem(policy: Policy, pointer: str, what: str, skipped: str) -> Problem:
    return Problem(
        policy.source,
        line_of(policy.lines, pointer),
        f"{pointer_to_field(pointer)}: {what} in the files read (not read: {skipped}); not planned this cycle",
    )


def _renumber_lines(
    policy: Policy, section: str, names: Sequence[str], dropped: set[str], lines: dict[str, int] | None = None
) -> dict[str, int]:
    """The policy's line map with `/spec/<section>/<i>` renumbered as the entries left after `dropped`."""
    source = dict(policy.lines) if lines is None else lines
    prefix = f"/spec/{section}/"
    new_index: dict[str, str] = {}
    for old, name in enumerate(names):
        if name not in dropped:
            new_index[str(old)] = str(len(new_index))
    out: dict[str, int] = {}
    for pointer, line in source.items():
        if not pointer.startswith(prefix):
            out[pointer] = line
            continue
        index, _, rest = pointer[len(prefix) :].partition("/")
        if index in new_index:
            out[f"{prefix}{new_index[index]}" + (f"/{rest}" if rest else "")] = line
    return out


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
    # The canary is the first target (a rollback that returns the canary image names that image too).
    target = next((value for key, value in plan.trailers if key == TRAILER_TARGET), None)
    if plan.action != "rollback" or not plan.files or target not in names:
        return None
    index = names.index(target)
    # The canary image's return to its earlier tag: the steps' revert does not touch it, so it goes on top.
    images = [change for change in plan.changes if change.kind != "weight"]

    def finish() -> tuple[dict[str, str], str] | None:
        try:
            route = read_route(policy, index, scan_checkout(policy, checkout))
            texts = {group.file: read_exact(checkout.root / group.file) for group in route.groups}
            files, message = settle_rollback(plan, route, texts)
            if images:
                current = {c.file: files.get(c.file) or read_exact(checkout.root / c.file) for c in images}
                files = {**files, **apply_changes(current, images)}
            return files, message
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
    kind = plan_kind(plan.action, plan.trailers, plan.body, bool(plan.files))
    rollback = kind in (KIND_ROLLBACK, KIND_HAND_ROLLBACK)
    # The commits a rollback undoes are listed apart: in Markdown, `git revert`'s lines would run into one line.
    evidence = without_reverts_paragraph(plan.evidence)
    return pull_request_body(
        summary=pull_request_summary(policy.name, kind),
        changes=plan.changes,
        why=evidence if is_image else "",
        evidence="" if is_image else evidence,
        rollback=rolling_back_text(policy.name, kind, plan.trailers),
        plan=plan.plan_id,
        undoes=undone_table(plan.reverts, () if plan.changes else plan.trailers) if plan.reverts else "",
        rollback_heading="Merging or closing" if rollback else "Rolling back",
    )


def still_merges(checkout: Checkout, pull: PullRequest) -> bool:
    """Whether the bot's open pull request still merges into the branch head.

    A person's change to the lines it edits (or the lines next to them) leaves the plan the same but the pull
    request conflicting; such a pull request is planned again from the head and its branch replaced.
    """
    return checkout.merges_cleanly(pull.head, pull.head_sha)


def deliver_pull_requests(
    policy: Policy,
    checkout: Checkout,
    forge: Forge,
    plans: Sequence[Plan],
    *,
    close_superseded: bool = True,
    honour_closed: bool = True,
    keep: Collection[str] = (),
) -> list[Delivery]:
    """One pull request per plan on `gitbot/<policy>/<name>`, updated in place; superseded ones closed.

    Pull requests opened by hand-run commands (`rollback-*`, `promote-*`) are left for a person to merge or close.
    With `honour_closed`, a plan whose pull request a person closed unmerged is skipped until it changes.
    The pull requests of the names in `keep` are not closed when no plan wants them (their lookup failed).
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
        # The listing holds every open pull request of the policy: looking one up again would only cost calls.
        existing: PullRequest | None = open_before.get(branch)
        if existing is not None:
            add_missing_labels(forge, existing, labels)
        if existing is not None and plan_id_in(existing.body) == plan.plan_id and still_merges(checkout, existing):
            delivered.append(Delivery(plan.name, "unchanged", existing.url, plan.subject))
            continue
        refused = forge.closed_pull(branch) if existing is None and honour_closed else None
        if refused is not None and plan_id_in(refused.body) == plan.plan_id:
            delivered.append(Delivery(plan.name, "skipped", refused.url, plan.subject))
            continue
        sha = commit_plan(policy, checkout, plan)
        # An update replaces the branch only if it still holds the head read above: of two replicas updating
        # one pull request at once, the second finds it moved, and reports it unchanged rather than updated.
        expected = existing.head_sha or None if existing is not None else None
        try:
            checkout.push_branch(branch, sha, expected)
        except PushRejectedError:
            if existing is None:
                raise
            delivered.append(Delivery(plan.name, "unchanged", existing.url, plan.subject))
            continue
        finally:
            checkout.reset(base)
        body = pull_request_text(policy, plan)
        if existing is not None:
            pr = forge.update_pull(existing.number, plan.subject, body)
            delivered.append(Delivery(plan.name, "updated", pr.url, plan.subject))
        else:
            pr = forge.create_pull(branch, policy.spec.git.branch, plan.subject, body, labels)
            # Another replica may have opened it a moment earlier: then only that one reports it opened.
            delivered.append(Delivery(plan.name, pr.created, pr.url, plan.subject))
    for head, pr in sorted(open_before.items()) if close_superseded else ():
        manual = head.rsplit("/", 1)[-1].startswith((MANUAL_PREFIX, PROMOTE_PREFIX))
        marker = PLAN_MARKER.split("{")[0]
        kept = head.rsplit("/", 1)[-1] in keep
        if head not in wanted and not manual and not kept and (marker in pr.body or SUPERSEDED_MARKER in pr.body):
            # Unmark the plan first: a pull request the bot closed is not a person's refusal of it.
            forge.update_pull(pr.number, pr.title, pr.body.replace(marker, SUPERSEDED_MARKER))
            forge.close_pull(
                pr.number,
                "gitbot: closing, this change is no longer needed "
                "(the branch already has it, or a newer plan replaced it).",
            )
            delivered.append(Delivery(head.rsplit("/", 1)[-1], "closed", pr.url, pr.title))
    return delivered


def add_missing_labels(forge: Forge, pull: PullRequest, labels: Sequence[str]) -> None:
    """Give the bot's open pull request the policy's labels it lacks (GitHub matches names regardless of case).

    A run stopped between GitHub's creation of the pull request and the labels leaves it without them, and
    every later cycle finds it by its plan id: only here do they come back. Labels a person added stay.
    """
    have = {label.casefold() for label in pull.labels}
    missing = [label for label in labels if label.casefold() not in have]
    if missing:
        forge.add_labels(pull.number, missing)


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
    running_quarantined: tuple[str, ...] = ()
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
    pulls: tuple[PullRequest, ...]


def status(policy: Policy, deps: Deps) -> StatusReport:
    """Per image: the tags running now, the tag a cycle would pick (past its promotion gate, `minAge` and
    `verify`, with the digest `digest: pin` writes), the newer tags held back and why, quarantined tags; PRs."""
    now = deps.clock.now()
    with deps.workspace.checkout() as checkout:
        targets, _texts, history, tags, failures = gather(policy, checkout, deps.registry, deps.scan_cache)
        gates = read_gates(policy, deps, checkout, now)
        head = checkout.head
    bindings = bind_images(policy, targets)
    # The registry is asked about the tags the gates let through, as a cycle asks (see `plan_cycle`).
    admitted = {
        b.image.name: admitted_tags(b, tags[b.image.name], gates.get(b.image.name))
        for b in bindings
        if b.image.name in tags
    }
    vetted, unvetted = vet_images(policy, deps.registry, targets, admitted, history, now)
    failed = {failure.image: failure for failure in (*failures, *unvetted)}
    images = []
    for index, binding in enumerate(bindings):
        image = binding.image
        flt = image_filter(policy, index)
        quarantined = history.quarantined(image.name)
        current = tuple(sorted({current_tag(t) or "(none)" for t in binding.targets}))
        vetting = vetted.get(image.name)
        gate = gates.get(image.name)
        listed, held = gated_tags(tags.get(image.name, ()), flt, quarantined.keys(), current, gate, vetting)
        selection = narrow(select(listed, flt, quarantine=quarantined.keys()), vetting)
        blocked = behind_quarantine(listed, flt, selection)
        flagged = tuple((t.resource, tag) for t in binding.targets if (tag := current_tag(t)) in quarantined)
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
                running_quarantined=tuple(sorted({tag for _resource, tag in flagged})),
                quarantined_targets=flagged,
                digest=vetting.digest if vetting is not None and newest and image.digest == "pin" else None,
                note=vetting.note if vetting is not None else "",
                vetted=vetting is not None,
            )
        )
    pulls: tuple[PullRequest, ...] = ()
    if deps.forge is not None:
        pulls = tuple(deps.forge.open_pulls(f"gitbot/{policy.name}/"))
    return StatusReport(policy.name, head, tuple(images), pulls)


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
    attempts = policy.spec.git.max_push_attempts
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
            made = make(checkout)
            if isinstance(made, Delivery):
                return made
            plan = replace(made, name=branch_name)
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


def already(name: str, ref: str, message: str) -> Delivery:
    """The answer of a command run again: its change is already there, `ref` shows it, nothing is delivered."""
    return Delivery(name, "unchanged", ref, message)


def open_manual_pull(policy: Policy, deps: Deps, branch_name: str, plan: str) -> Delivery | None:
    """In pull-request mode, the open pull request of a command run by hand that already proposes `plan`."""
    if policy.spec.delivery.mode != "pull-request" or deps.forge is None:
        return None
    existing = deps.forge.find_pull(bot_branch(policy, branch_name))
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
        subject = f"gitbot({policy.name}): roll back {name} {mine[0].new} -> {mine[0].old}"
        pid = plan_id(policy.name, name, "rollback", [])[:8] + victim.sha[:8]
        body = (
            f"This reverts commit {victim.sha}.\n\n"
            f"Rolled back on request (gitbot rollback {name} --policy {policy.name})."
            + (f" Quarantined: {', '.join(f'{t}={tag}' for t, tag in quarantine)}." if quarantine else "")
        )
        trailers = rollback_trailers(policy.name, name, mine[0].new, mine[0].old, pid, quarantine)
        proposed = open_manual_pull(policy, deps, f"{MANUAL_PREFIX}{name}", pid)
        if proposed is not None:
            return proposed
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


# The first words of a step's message when `gitbot promote` made it (rollout.step_plan writes them).
_BY_HAND = "Stepped by hand (gitbot promote "


def hand_step(history: History, name: str, weight: int) -> BotCommit | None:
    """The step by hand that brought canary `name` to `weight`, when it is the canary's newest change."""
    for commit in history.commits:
        if not any(change.target == name for change in commit.changes) or commit.action in ("pause", "resume"):
            continue
        by_hand = commit.action == "canary-step" and commit.commit.body.startswith(_BY_HAND)
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
        targets = scan_checkout(policy, checkout, deps.scan_cache)
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


def set_paused(policy: Policy, deps: Deps, name: str, *, paused: bool, why: str = "") -> str:
    """Record a pause or resume of canary `name` as a marker commit on the policy's branch (commit sha).

    When the canary already is as asked, nothing is recorded and the branch head is returned.
    """
    return mark_paused(policy, deps, name, paused=paused, why=why).ref


def mark_paused(policy: Policy, deps: Deps, name: str, *, paused: bool, why: str = "") -> Delivery:
    """Pause or resume canary `name` with a marker commit; a pause of a paused canary (or a resume of one
    that runs) records nothing and says so, so that a command run again after a crash adds no second marker."""
    index = _canary_index(policy, name)
    canary = policy.spec.canaries[index]
    action = "pause" if paused else "resume"
    message = marker_message(policy, name, action, why or default_marker_reason(action, name))
    attempts = policy.spec.git.max_push_attempts
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
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
                if attempt == attempts:
                    raise
                checkout.refresh()
                continue
            return Delivery(name, "committed", sha, message.split("\n", 1)[0])
    raise GitbotError("unreachable: the marker loop ended without a result")
