"""Delivery of plans: commits pushed to the environment branch, or one pull request per plan on the bot's
own branch `gitbot/<policy>/<name>`, and a pull-request cycle's canary rollbacks pushed straight to the branch.

Owns how a plan becomes a commit (a `git revert` for a rollback, its edited files when that conflicts), the
pull request's text and the bot's branch names. The environment branch is never force-pushed: a rejected
push leaves nothing pushed, and `retry_on_reject` (the one loop the cycle and every command use) fetches,
plans again from the new head and retries, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from gitbot.config import MANUAL_PREFIXES, Policy
from gitbot.domain import Author, Plan
from gitbot.errors import GitbotError, GitError, PushRejectedError
from gitbot.gather import read_exact, scan_checkout
from gitbot.history import TRAILER_TARGET
from gitbot.messages import (
    KIND_HAND_ROLLBACK,
    KIND_ROLLBACK,
    marked_by_bot,
    plan_id_in,
    plan_kind,
    pull_request_body,
    pull_request_summary,
    render_message,
    rolling_back_text,
    superseded_body,
    undone_table,
    without_reverts_paragraph,
)
from gitbot.ports import ChangeRequest, Checkout, Forge, NewCommit, RevertFinish
from gitbot.rollout import apply_changes, read_route, rollback_commit_message, settle_rollback

T = TypeVar("T")

# Branch names of pull requests a person asked for by hand (`gitbot/<policy>/rollback-<name>`,
# `promote-<name>`); cycles never close them as superseded. No image or canary name may start with one.
MANUAL_PREFIX, PROMOTE_PREFIX = MANUAL_PREFIXES


# "skipped": a person closed this plan's pull request unmerged; it is not opened again until the plan changes.
Outcome = Literal["committed", "opened", "updated", "unchanged", "skipped", "closed", "planned"]


@dataclass(frozen=True)
class Delivery:
    """What happened to one plan (or one superseded pull request)."""

    name: str
    outcome: Outcome
    ref: str
    subject: str


def author_of(policy: Policy) -> Author:
    return Author(policy.spec.git.author.name, policy.spec.git.author.email)


def bot_branch(policy: Policy, name: str) -> str:
    return f"gitbot/{policy.name}/{name}"


def retry_on_reject(policy: Policy, checkout: Checkout, attempt: Callable[[int], T], log: Callable[[str], None]) -> T:
    """`attempt(n)` for n = 1, 2, ... up to the policy's `maxPushAttempts`, until one is not rejected.

    Each attempt plans from the checkout's head and pushes to the environment branch; when that push is
    rejected (the branch moved meanwhile), it must leave nothing pushed and no local commit. The new head is
    then fetched and the next attempt plans again on it; the last attempt's rejection is raised as it is.
    """
    attempts = policy.spec.git.max_push_attempts
    for number in range(1, attempts + 1):
        try:
            return attempt(number)
        except PushRejectedError:
            if number >= attempts:
                raise
            log(f"push to {policy.spec.git.branch} rejected; fetching and planning again ({number}/{attempts})")
            checkout.refresh()
    raise GitbotError(f"policy {policy.name}: maxPushAttempts is {attempts}; no push was attempted")


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
            pull = forge.find_change_request(bot_branch(policy, f"{suffix}{plan.name}"))
            if pull is None:
                continue
            if suffix:
                forge.comment_change_request(pull.number, note)
                continue
            # Unmarked first, as a superseded one: a pull request the bot closed is not a person's refusal.
            forge.update_change_request(pull.number, pull.title, superseded_body(pull.body))
            forge.close_change_request(pull.number, f"{note} This step is no longer wanted; closing.")
            out.append(Delivery(plan.name, "closed", pull.url, pull.title))
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
    """Commit every plan on the working branch and push once; PushRejectedError leaves nothing pushed.

    Plans that only write files are committed as one series (`Checkout.commit_series`); a revert is its own.
    """
    if not plans:
        return []
    base = checkout.head
    shas: list[str] = []
    series: list[NewCommit] = []
    for plan in plans:
        if not plan.reverts:
            series.append(
                NewCommit(dict(plan.files), render_message(plan.subject, plan.body, plan.trailers), author_of(policy))
            )
            continue
        shas.extend(checkout.commit_series(series) if series else ())
        series.clear()
        shas.append(commit_plan(policy, checkout, plan))
    shas.extend(checkout.commit_series(series) if series else ())
    delivered = [Delivery(plan.name, "committed", sha, plan.subject) for plan, sha in zip(plans, shas, strict=True)]
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


def still_merges(checkout: Checkout, pull: ChangeRequest) -> bool:
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
    labels = policy.spec.delivery.labels
    base = checkout.head
    open_before = {pr.head: pr for pr in forge.open_change_requests(f"gitbot/{policy.name}/")}
    delivered: list[Delivery] = []
    wanted: set[str] = set()
    for plan in plans:
        branch = bot_branch(policy, plan.name)
        wanted.add(branch)
        # The listing holds every open pull request of the policy: looking one up again would only cost calls.
        existing: ChangeRequest | None = open_before.get(branch)
        if existing is not None:
            add_missing_labels(forge, existing, labels)
        if existing is not None and plan_id_in(existing.body) == plan.plan_id and still_merges(checkout, existing):
            delivered.append(Delivery(plan.name, "unchanged", existing.url, plan.subject))
            continue
        refused = forge.closed_change_request(branch) if existing is None and honour_closed else None
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
            pr = forge.update_change_request(existing.number, plan.subject, body)
            delivered.append(Delivery(plan.name, "updated", pr.url, plan.subject))
        else:
            pr = forge.create_change_request(branch, policy.spec.git.branch, plan.subject, body, labels)
            # Another replica may have opened it a moment earlier: then only that one reports it opened.
            delivered.append(Delivery(plan.name, pr.created, pr.url, plan.subject))
    for head, pr in sorted(open_before.items()) if close_superseded else ():
        manual = head.rsplit("/", 1)[-1].startswith((MANUAL_PREFIX, PROMOTE_PREFIX))
        kept = head.rsplit("/", 1)[-1] in keep
        if head not in wanted and not manual and not kept and marked_by_bot(pr.body):
            # Unmark the plan first: a pull request the bot closed is not a person's refusal of it.
            forge.update_change_request(pr.number, pr.title, superseded_body(pr.body))
            forge.close_change_request(
                pr.number,
                "gitbot: closing, this change is no longer needed "
                "(the branch already has it, or a newer plan replaced it).",
            )
            delivered.append(Delivery(head.rsplit("/", 1)[-1], "closed", pr.url, pr.title))
    return delivered


def add_missing_labels(forge: Forge, pull: ChangeRequest, labels: Sequence[str]) -> None:
    """Give the bot's open change request the policy's labels it lacks (names match regardless of case, as
    on GitHub).

    A run stopped between the forge's creation of the change request and its labels leaves it without them, and
    every later cycle finds it by its plan id: only here do they come back. Labels a person added stay.
    """
    have = {label.casefold() for label in pull.labels}
    missing = [label for label in labels if label.casefold() not in have]
    if missing:
        forge.add_labels(pull.number, missing)
