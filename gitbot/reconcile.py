"""One reconcile cycle for one policy: checkout -> scan -> history -> gather -> plan -> deliver -> report.

The only module that sequences I/O, always through the ports in `gitbot.ports`; it builds no adapter.
Dry-run is "stop after planning". The environment branch is never force-pushed: a rejected push means
refresh from the remote, plan again from the new head and retry, a bounded number of times.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gitbot.config import Policy
from gitbot.domain import Author, Plan, Target
from gitbot.errors import ConfigError, GitbotError, GitError, PushRejectedError, UsageError
from gitbot.history import History, read_history
from gitbot.manifests import scan_paths
from gitbot.messages import PLAN_MARKER, plan_id, plan_id_in, pull_request_body, render_message, rollback_trailers
from gitbot.planner import behind_quarantine, bind_images, current_tag, plan_images
from gitbot.ports import Checkout, Clock, Forge, PullRequest, Registry, Workspace
from gitbot.versioning import parse_filter, select

Outcome = Literal["committed", "opened", "updated", "unchanged", "closed", "planned"]


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


@dataclass(frozen=True)
class Deps:
    """The adapters one cycle uses, built by the composition root."""

    workspace: Workspace
    registry: Registry
    clock: Clock
    forge: Forge | None = None
    log: Callable[[str], None] = field(default=lambda _msg: None)


def author_of(policy: Policy) -> Author:
    return Author(policy.spec.git.author.name, policy.spec.git.author.email)


def bot_branch(policy: Policy, name: str) -> str:
    return f"gitbot/{policy.name}/{name}"


def gather(
    policy: Policy, checkout: Checkout, registry: Registry
) -> tuple[list[Target], dict[str, str], History, dict[str, Sequence[str]]]:
    """Scan the working copy, read history and list tags: everything the planner needs."""
    targets = scan_paths(checkout.root, policy.spec.git.paths)
    texts = {file: (checkout.root / file).read_text(encoding="utf-8") for file in sorted({t.file for t in targets})}
    history = read_history(checkout.log(), policy.name)
    tags: dict[str, Sequence[str]] = {}
    for image in policy.spec.images:
        tags[image.name] = registry.list_tags(image.repository)
    return targets, texts, history, tags


def plan_cycle(policy: Policy, checkout: Checkout, registry: Registry, *, chain: bool) -> list[Plan]:
    targets, texts, history, tags = gather(policy, checkout, registry)
    return plan_images(policy, targets, texts, tags, history, chain=chain)


def unified_diff(root: Path, plans: Sequence[Plan]) -> str:
    """A unified diff of every plan against the working copy (plans applied in order)."""
    current: dict[str, str] = {}
    out: list[str] = []
    for plan in plans:
        for file, new in plan.files:
            old = current.get(file)
            if old is None:
                old = (root / file).read_text(encoding="utf-8")
            out += difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{file}", f"b/{file}"
            )
            current[file] = new
    return "".join(out)


def run_cycle(policy: Policy, deps: Deps, *, deliver: bool) -> CycleResult:
    """Run one cycle; with `deliver` False it stops after planning and returns the plans and their diff."""
    pull_requests = policy.spec.delivery.mode == "pull-request"
    if pull_requests and deliver and deps.forge is None:
        raise ConfigError("pull-request delivery needs a forge (spec.delivery.github)", where=policy.source)
    attempts = policy.spec.git.max_push_attempts
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
            plans = plan_cycle(policy, checkout, deps.registry, chain=not pull_requests)
            diff = unified_diff(checkout.root, plans)
            head = checkout.head
            if not deliver:
                deliveries = tuple(Delivery(p.name, "planned", p.plan_id, p.subject) for p in plans)
                return CycleResult(policy.name, tuple(plans), deliveries, diff, attempt, head)
            if pull_requests:
                assert deps.forge is not None
                delivered = deliver_pull_requests(policy, checkout, deps.forge, plans)
                return CycleResult(policy.name, tuple(plans), tuple(delivered), diff, attempt, head)
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
            return CycleResult(policy.name, tuple(plans), tuple(delivered), diff, attempt, checkout.head)
    raise GitbotError("unreachable: the cycle loop ended without a result")


def deliver_commits(policy: Policy, checkout: Checkout, plans: Sequence[Plan]) -> list[Delivery]:
    """Commit every plan on the working branch and push once; PushRejectedError leaves nothing pushed."""
    if not plans:
        return []
    base = checkout.head
    delivered = []
    for plan in plans:
        sha = checkout.commit(
            dict(plan.files), render_message(plan.subject, plan.body, plan.trailers), author_of(policy)
        )
        delivered.append(Delivery(plan.name, "committed", sha, plan.subject))
    try:
        checkout.push()
    except PushRejectedError:
        checkout.reset(base)
        raise
    return delivered


def pull_request_text(policy: Policy, plan: Plan) -> str:
    is_image = plan.action == "image-update"
    rollback = (
        "Close this pull request to skip this change for now. After merging, revert the merge "
        "(GitHub's Revert button or `git revert`) or run "
        f"`gitbot rollback {plan.name} --policy {policy.name}`: the reverted tag is quarantined and not proposed again."
    )
    return pull_request_body(
        summary=f"gitbot proposes this change for policy **{policy.name}**.",
        changes=plan.changes,
        why=plan.evidence if is_image else "",
        evidence="" if is_image else plan.evidence,
        rollback=rollback,
        plan=plan.plan_id,
    )


def deliver_pull_requests(policy: Policy, checkout: Checkout, forge: Forge, plans: Sequence[Plan]) -> list[Delivery]:
    """One pull request per plan on `gitbot/<policy>/<name>`, updated in place; superseded ones closed."""
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
        sha = checkout.commit(
            dict(plan.files), render_message(plan.subject, plan.body, plan.trailers), author_of(policy)
        )
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
    rollbacks = bot_branch(policy, "rollback-")
    for head, pr in sorted(open_before.items()):
        # A rollback pull request is asked for by a person and stays until they merge or close it.
        if head not in wanted and not head.startswith(rollbacks) and PLAN_MARKER.split("{")[0] in pr.body:
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
        targets, _texts, history, tags = gather(policy, checkout, deps.registry)
        head = checkout.head
    images = []
    for index, binding in enumerate(bind_images(policy, targets)):
        image = binding.image
        flt = parse_filter(
            image.filter,
            allow_prerelease=image.allow_prerelease,
            extract=image.extract,
            order=image.order,
            where=policy.where(f"/spec/images/{index}/filter"),
        )
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


def rollback(policy: Policy, deps: Deps, name: str) -> Delivery:
    """Revert the newest standing bot change for `name` with `git revert`, by the policy's delivery mode.

    The tags that change introduced are quarantined through the rollback commit's trailers.
    """
    pull_requests = policy.spec.delivery.mode == "pull-request"
    attempts = policy.spec.git.max_push_attempts
    with deps.workspace.checkout() as checkout:
        for attempt in range(1, attempts + 1):
            history = read_history(checkout.log(), policy.name)
            # A rollback is not itself rolled back: reverting it would re-apply the tag it quarantined.
            standing = [c for c in history.standing(name) if c.action != "rollback"]
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
                f"Rolled back on request (gitbot rollback {name} --policy {policy.name}). "
                + (f"Quarantined: {', '.join(f'{t}={tag}' for t, tag in quarantine)}." if quarantine else "")
            )
            trailers = rollback_trailers(policy.name, name, mine[0].new, mine[0].old, pid, quarantine)
            base = checkout.head
            sha = checkout.revert([victim.sha], render_message(subject, body, trailers), author_of(policy))
            if sha is None:
                raise GitError(
                    f"reverting {victim.sha[:7]} ({victim.commit.subject}) conflicts with later changes",
                    hint="revert it by hand and resolve the conflict; gitbot will quarantine the tag it sees reverted",
                )
            if pull_requests:
                if deps.forge is None:
                    raise ConfigError("pull-request delivery needs a forge (spec.delivery.github)", where=policy.source)
                branch = bot_branch(policy, f"rollback-{name}")
                try:
                    checkout.push_branch(branch, sha)
                finally:
                    checkout.reset(base)
                existing = deps.forge.find_pull(branch)
                text = pull_request_body(
                    summary=f"gitbot rolls back **{name}** in policy **{policy.name}** by reverting {victim.sha[:7]}.",
                    changes=(),
                    why=body,
                    evidence="",
                    rollback="Close this pull request to keep the current state.",
                    plan=pid,
                )
                github = policy.spec.delivery.github
                if existing is not None:
                    pr = deps.forge.update_pull(existing.number, subject, text)
                    return Delivery(name, "updated", pr.url, subject)
                pr = deps.forge.create_pull(
                    branch, policy.spec.git.branch, subject, text, github.labels if github else ()
                )
                return Delivery(name, "opened", pr.url, subject)
            try:
                checkout.push()
            except PushRejectedError:
                checkout.reset(base)
                if attempt == attempts:
                    raise
                checkout.refresh()
                continue
            return Delivery(name, "committed", sha, subject)
    raise GitbotError("unreachable: the rollback loop ended without a result")
