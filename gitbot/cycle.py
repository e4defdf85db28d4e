"""One cycle for one policy: checkout -> scan -> history -> gather -> plan -> deliver -> report.

The only module that sequences a cycle's I/O, always through the ports in `gitbot.ports`; it builds no
adapter. Dry-run is "stop after planning". The environment branch is never force-pushed: a rejected push
means refresh from the remote, plan again from the new head and retry, a bounded number of times.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property, partial
from pathlib import Path

from gitbot.analysis import (
    latency_series,
    observed_canary_share,
    read_ga_reference,
    render_latency_chart,
    run_analysis,
    run_full_weight_analysis,
    share_applied_at,
)
from gitbot.config import GROUP_ALL_NAME, CanarySettings, Policy, line_of, pointer_to_field
from gitbot.delivery import (
    Delivery,
    bot_branch,
    deliver_commits,
    deliver_pull_requests,
    deliver_rollbacks,
    retry_on_reject,
)
from gitbot.domain import Plan, Target
from gitbot.errors import ConfigError, DeadlineError, GitbotError
from gitbot.gather import gather, read_exact, read_texts
from gitbot.history import TRAILER_TARGET, History, read_history
from gitbot.manifests import Problem, ScanCache, held_in
from gitbot.messages import plan_id_in, trailer_moves
from gitbot.planner import (
    CanaryOutcome,
    LookupFailure,
    admitted_tags,
    bind_images,
    held_downgrades,
    plan_canaries,
    plan_images,
)
from gitbot.ports import Checkout, Clock, Forge, Metrics, Registry, Workspace
from gitbot.promotion import CanaryGate, Gate, judge_gate, unreadable_gate
from gitbot.rollout import Observation, RouteState, analysis_spec, canary_history, read_route, restart_on_new_image
from gitbot.tagfacts import promotion_pins, vet_images


@dataclass(frozen=True)
class CycleResult:
    policy: str
    plans: tuple[Plan, ...]
    deliveries: tuple[Delivery, ...]
    # The unified diff of the plans, or what makes it: thousands of changed files take seconds to compare,
    # and most cycles never show their diff (`plan --diff` does), so it is made when first asked for.
    diff_source: str | Callable[[], str]
    attempts: int
    head: str
    canaries: tuple[CanaryOutcome, ...] = ()
    # Images whose tag lookup failed: left as they are while everything else was planned and delivered.
    failures: tuple[LookupFailure, ...] = ()
    # Files the scan could not take in, and what could not be planned because of them; the rest went on.
    problems: tuple[Problem, ...] = ()
    # The bot's history as the cycle read it before delivering, for what notifications tell (reverts, times).
    history: History | None = None

    @cached_property
    def diff(self) -> str:
        """The unified diff of the plans against the branch as the cycle found it."""
        return self.diff_source if isinstance(self.diff_source, str) else self.diff_source()


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
    # Bound once: the planning below takes these bindings, not the policy's image settings again.
    bindings = bind_images(policy, targets)
    # Release age, signatures and digests are asked only of the tags the promotion gate lets through.
    admitted = {
        binding.image.name: admitted_tags(binding, tags.get(binding.image.name, ()), gates.get(binding.image.name))
        for binding in bindings
    }
    vetted, unvetted = vet_images(policy, deps.registry, bindings, admitted, history, deps.clock.now())
    failures += unvetted
    deps.progress("plan")
    plans = plan_images(
        policy, targets, texts, tags, history, chain=chain, gates=gates, vetted=vetted, bindings=bindings
    )
    problems += held_downgrades(policy, targets, tags, history, bindings=bindings)
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
    pins = promotion_pins(policy, deps.registry, bindings, routes)
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
        bindings=bindings,
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
        changes = trailer_moves(plan.trailers)
        mine = [(name, old, new) for name, old, new in changes if name in images and name not in pending]
        if not mine:
            continue
        if forge is not None and forge.find_change_request(bot_branch(policy, plan.name)) is None:
            refused = forge.closed_change_request(bot_branch(policy, plan.name))
            if refused is not None and plan_id_in(refused.body) == plan.plan_id:
                continue
        for name, old, new in mine:
            pending[name] = (
                f"canary image {name} {old} -> {new} is proposed in a pull request; the next step waits until it lands"
            )
    return pending


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


@dataclass(frozen=True)
class _PullRequestCycle:
    """A pull-request cycle's attempt that got past the branch: its plan, and the canary rollbacks it pushed
    there (which do not wait for a review; the cycle then planned the rest again from the new head)."""

    attempt: int
    cycle: CyclePlan
    plans: tuple[Plan, ...]
    diff: str | Callable[[], str]
    head: str
    rollbacks: tuple[Plan, ...] = ()
    rolled: tuple[Delivery, ...] = ()


def run_cycle(policy: Policy, deps: Deps, *, deliver: bool) -> CycleResult:
    """Run one cycle; with `deliver` False it stops after planning and returns the plans and their diff."""
    pull_requests = policy.spec.delivery.mode == "pull-request"
    if pull_requests and deliver and deps.forge is None:
        raise ConfigError("pull-request delivery needs a forge (spec.delivery.github)", where=policy.source)
    undeadlined = deps
    deps = with_deadline(policy, deps)
    deps.progress("checkout")
    with deps.workspace.checkout() as checkout:

        def attempt(number: int) -> CycleResult | _PullRequestCycle:
            # Planned from the head each time: a rejected push is retried on what the branch holds now.
            cycle = plan_cycle(policy, checkout, deps, chain=not pull_requests)
            plans = cycle.plans
            # From the texts the cycle read (a file a plan changes that held no target is read now): the diff
            # writes no working tree, and a commit writes only its own files.
            planned = {file for plan in plans for file, _text in plan.files}
            base = {file: cycle.texts[file] for file in planned if file in cycle.texts}
            base.update(read_texts(checkout, planned - base.keys()))
            diff = partial(unified_diff, None, plans, chain=not pull_requests, base=base)
            head = checkout.head
            if not deliver:
                deliveries = tuple(Delivery(p.name, "planned", p.plan_id, p.subject) for p in plans)
                return CycleResult(
                    policy.name, plans, deliveries, diff, number, head, cycle.canaries, cycle.failures, cycle.problems
                )
            deps.progress("deliver")
            if pull_requests:
                assert deps.forge is not None
                safety = straight_rollbacks(policy, plans)
                if not safety:
                    return _PullRequestCycle(number, cycle, plans, diff, head)
                rolled = deliver_rollbacks(policy, checkout, deps.forge, safety, rollback_reasons(cycle))
                # The rest is planned again from the branch as the rollbacks left it (no deadline: the
                # rollbacks are delivered, and a cycle past it must not say nothing was).
                again = plan_cycle(policy, checkout, undeadlined, chain=False)
                landed = after_rollbacks(cycle, safety, again)
                return _PullRequestCycle(number, landed, again.plans, diff, checkout.head, safety, tuple(rolled))
            delivered = deliver_commits(policy, checkout, plans)
            return CycleResult(
                policy.name,
                plans,
                tuple(delivered),
                diff,
                number,
                checkout.head,
                cycle.canaries,
                cycle.failures,
                cycle.problems,
                cycle.history,
            )

        done = retry_on_reject(policy, checkout, attempt, deps.log)
        if isinstance(done, CycleResult):
            return done
        assert deps.forge is not None
        # Not retried: pull requests go to the bot's own branches, whose races `deliver_pull_requests` settles.
        cycle = done.cycle
        delivered = deliver_pull_requests(
            policy, checkout, deps.forge, done.plans, keep=unplanned_by_failure(policy, cycle.failures)
        )
        return CycleResult(
            policy.name,
            (*done.rollbacks, *done.plans),
            (*done.rolled, *delivered),
            done.diff,
            done.attempt,
            done.head,
            cycle.canaries,
            cycle.failures,
            cycle.problems,
            cycle.history,
        )


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

    The target may live in a file that was not read, or in one that does not parse and names it; each one
    set aside becomes a Problem at its place in the policy file, which names those files, and the rest of the
    policy is planned. An image with a setter marker in a file that does not parse is set aside too. Without
    such files nothing is set aside (a missing target is then a mistake in the policy, reported by the
    planner as before).
    """
    if not problems:
        return policy
    scanned = list(problems)
    spec = policy.spec
    dropped_images: dict[str, str] = {}
    for index, image in enumerate(spec.images):
        for t_index, named in enumerate(image.targets):
            if not any(
                t.resource == named.resource
                and t.kind == "image"
                and (named.container is None or t.container == named.container)
                for t in targets
            ) and (skipped := held_in(scanned, named.resource)):
                pointer = f"/spec/images/{index}/targets/{t_index}"
                what = f"image {image.name}: {named.resource} not found in the files read"
                problems.append(_policy_problem(policy, pointer, what, skipped, image.name))
                dropped_images[image.name] = skipped
                break
        # A setter marker in a file that does not parse: the image's other fields would move without it.
        if image.name not in dropped_images and (skipped := held_in(scanned, marker=image.name)):
            what = f"image {image.name}: a field marked for it is in a file that does not parse"
            problems.append(_policy_problem(policy, f"/spec/images/{index}", what, skipped, image.name))
            dropped_images[image.name] = skipped
    dropped_canaries: set[str] = set()
    for index, canary in enumerate(spec.canaries):
        why = skipped = ""
        if not any(t.resource == canary.route and t.kind == "weight" for t in targets):
            skipped = held_in(scanned, canary.route)
            why, pointer = (
                f"canary {canary.name}: {canary.route} not found in the files read",
                f"/spec/canaries/{index}/route",
            )
        if not skipped and {canary.image, canary.promote_to} & dropped_images.keys():
            name = canary.image if canary.image in dropped_images else canary.promote_to
            why, pointer = f"canary {canary.name}: its image {name} is set aside", f"/spec/canaries/{index}"
            skipped = dropped_images[str(name)]
        if skipped:
            problems.append(_policy_problem(policy, pointer, why, skipped, canary.name))
            dropped_canaries.add(canary.name)
    if not dropped_images and not dropped_canaries:
        return policy
    images = tuple(i for i in spec.images if i.name not in dropped_images)
    canaries = tuple(c for c in spec.canaries if c.name not in dropped_canaries)
    lines = _renumber_lines(policy, "images", [i.name for i in spec.images], set(dropped_images))
    lines = _renumber_lines(policy, "canaries", [c.name for c in spec.canaries], dropped_canaries, lines)
    return policy.model_copy(
        update={"spec": spec.model_copy(update={"images": images, "canaries": canaries}), "lines": lines}
    )


def refuse_set_aside(policy: Policy, targets: Sequence[Target], problems: list[Problem], name: str) -> None:
    """ConfigError, naming the files at fault, when image or canary `name` is set aside by a problem file."""
    set_aside_unbound(policy, targets, problems)
    for problem in problems:
        if problem.blocks == name:
            raise ConfigError(problem.why, where=problem.where)


def _policy_problem(policy: Policy, pointer: str, what: str, skipped: str, name: str) -> Problem:
    return Problem(
        policy.source,
        line_of(policy.lines, pointer),
        f"{pointer_to_field(pointer)}: {what} ({skipped}); not planned this cycle",
        scope="policy",
        blocks=name,
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
