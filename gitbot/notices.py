"""What people hear of: a cycle's or a command's result turned into `Notice`s, each told once.

Owns which events are told and when. A delivered change is told by the run that delivered it. Events that
last across cycles are told by the one cycle whose time window holds their start, derived from git and the
clock alone, so that a restarted bot or another replica tells nothing twice and needs no memory:
- a person's revert of a bot change: the cycle in whose window (`window` before now) the revert landed;
- a canary complete at its last step: the cycle in whose window its dwell there ended;
- a step not applied: the cycle in whose window `applyTimeout` since the step ran out;
- an analysis inconclusive since the step: the cycle in whose window `notifyAfterInconclusive` ran out.
A canary held on a failing analysis (onFailure: hold, or a paused canary) is told every cycle while it lasts.

Pure: it reads no git, clock or network; the caller passes the cycle's result, the time and the window.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from gitbot.canary import CanaryDecision
from gitbot.config import CanarySettings, Policy
from gitbot.cycle import CycleResult
from gitbot.delivery import Delivery
from gitbot.domain import CheckResult, CommitInfo, Notice, NoticeDelivery, NoticeEvent, NoticeSource, Plan
from gitbot.history import BotCommit, History, parse_bot_commit
from gitbot.planner import CanaryOutcome
from gitbot.rollout import canary_history, canary_policy

# Plan actions and the event that tells of their delivery.
_EVENT_OF_ACTION: dict[str, NoticeEvent] = {
    "image-update": "image-update",
    "canary-step": "canary-step",
    "rollback": "rollback",
    "promote": "canary-promoted",
}
_DELIVERED = ("committed", "opened", "updated")
_SUBJECT_PREFIX = re.compile(r"^gitbot\([^)]*\):\s*")
# Forges whose web pages show a commit at a path derived from the repository's address.
_COMMIT_PATHS = {
    "github.com": "/commit/",
    "gitlab.com": "/-/commit/",
    "bitbucket.org": "/commits/",
    "codeberg.org": "/commit/",
}
_SCP_URL = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/][^:]*)$")
_URL = re.compile(r"^(?:https?|ssh|git)://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.+)$")


def commit_link(git_url: str, sha: str) -> str | None:
    """The web address of commit `sha` on a forge known by `git_url`'s host; None elsewhere (the sha says it)."""
    match = _URL.match(git_url) or _SCP_URL.match(git_url)
    if match is None or not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        return None
    host = match.group("host").lower()
    path = match.group("path").strip("/").removesuffix(".git")
    if host not in _COMMIT_PATHS or path.count("/") < 1:
        return None
    return f"https://{host}/{path}{_COMMIT_PATHS[host]}{sha}"


def summary_of(subject: str) -> str:
    """A change's subject without the `gitbot(<policy>):` prefix the notice's context already gives."""
    return _SUBJECT_PREFIX.sub("", subject, count=1)


def _when(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"


def _number(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "no data"
    return f"{value:.4g}{unit}"


def _unit(name: str) -> str:
    if name in ("success-rate", "error-rate"):
        return "%"
    if name.startswith("latency"):
        return " ms"
    return ""


def check_text(check: CheckResult) -> str:
    """One check's figures in a line: verdict, canary and GA values, threshold, and a sequential test's figures."""
    unit = _unit(check.name)
    text = f"{check.verdict}: canary {_number(check.canary, unit)}"
    if check.stable is not None:
        text += f", GA {_number(check.stable, unit)}"
    if check.threshold:
        text += f" (needs {check.threshold})"
    if check.sequential:
        text += f"; e-value {_number(check.e_value, '')}, effect {_number(check.effect, '')}"
        canary, stable = check.requests
        text += f", requests {_number(canary, '')} / {_number(stable, '')}"
    if check.detail:
        text += f"; {check.detail}"
    return text


def _check_facts(checks: Sequence[CheckResult]) -> tuple[tuple[str, str], ...]:
    return tuple((check.name, check_text(check)) for check in checks)


def _delivery_title(summary: str, delivery: Delivery, branch: str) -> str:
    if delivery.outcome == "opened":
        return f"Pull request opened: {summary}"
    if delivery.outcome == "updated":
        return f"Pull request updated: {summary}"
    return f"{summary}: committed to {branch}"


def _link(policy: Policy, delivery: Delivery) -> str | None:
    if delivery.outcome in ("opened", "updated"):
        return delivery.ref if delivery.ref.startswith(("https://", "http://")) else None
    return commit_link(policy.spec.git.url, delivery.ref)


def _ref_fact(delivery: Delivery) -> tuple[str, str]:
    if delivery.outcome in ("opened", "updated"):
        return ("Pull request", delivery.ref)
    return ("Commit", delivery.ref[:12])


def _canary_of(policy: Policy, name: str) -> CanarySettings | None:
    return next((c for c in policy.spec.canaries if c.name == name), None)


def delivery_notice(
    policy: Policy,
    plan: Plan,
    delivery: Delivery,
    outcome: CanaryOutcome | None,
    *,
    source: NoticeSource,
    at: datetime | None,
) -> Notice:
    """What people hear of one delivered plan: the change, how it was delivered, the figures that decided."""
    event = _EVENT_OF_ACTION.get(plan.action, "image-update")
    summary = summary_of(plan.subject)
    facts: list[tuple[str, str]] = []
    checks: tuple[CheckResult, ...] = ()
    verdict = None
    detail = ""
    if outcome is not None and outcome.decision is not None:
        decision = outcome.decision
        facts.append(("Weight", _weights(decision)))
        detail = decision.reason
        analysis = outcome.observation.analysis if outcome.observation is not None else None
        if analysis is not None:
            checks, verdict = analysis.checks, analysis.verdict
            facts.append(("Verdict", f"{analysis.verdict}: {analysis.summary}" if analysis.summary else verdict))
    else:
        facts += [(change.resource or change.file, f"{change.old} → {change.new}") for change in plan.changes]
    facts.append(_ref_fact(delivery))
    return Notice(
        event,
        policy.name,
        _delivery_title(summary, delivery, policy.spec.git.branch),
        source,
        name=plan.name,
        detail=detail,
        facts=tuple(facts) + _check_facts(checks),
        checks=checks,
        verdict=verdict,
        delivery=_delivered(delivery),
        ref=delivery.ref,
        link=_link(policy, delivery),
        at=at,
    )


def _weights(decision: CanaryDecision) -> str:
    if decision.to_weight is None:
        return f"{decision.from_weight}%"
    return f"{decision.from_weight}% → {decision.to_weight}%"


def _within(start: datetime | None, now: datetime, window: timedelta) -> bool:
    """Whether `start` fell in this cycle's window, [now - window, now): cycles one window apart tile time,
    so each start falls in exactly one of them (one at `now` itself is the next cycle's)."""
    return start is not None and now - window <= start < now


def _delivered(delivery: Delivery) -> NoticeDelivery | None:
    outcome = delivery.outcome
    return outcome if outcome in ("committed", "opened", "updated") else None


def canary_notices(
    policy: Policy,
    outcome: CanaryOutcome,
    history: History | None,
    *,
    now: datetime,
    window: timedelta,
    source: NoticeSource,
) -> list[Notice]:
    """What one canary that delivered nothing this cycle asks people to hear: complete, a step not applied,
    an analysis inconclusive too long, a failure held; each in the cycle whose window holds its start."""
    decision = outcome.decision
    settings = _canary_of(policy, outcome.name)
    if decision is None or settings is None or outcome.plan is not None:
        return []
    hist = canary_history(history, settings) if history is not None else None
    last_step = hist.last_step_at if hist is not None else None
    observation = outcome.observation
    analysis = observation.analysis if observation is not None else None
    checks = analysis.checks if analysis is not None else ()
    facts = [("Weight", f"{outcome.weight}%")]
    if observation is not None and observation.share is not None and math.isfinite(observation.share):
        facts.append(("Canary share", f"{observation.share:.1f}%"))
    if analysis is not None:
        facts.append(("Verdict", f"{analysis.verdict}: {analysis.summary}" if analysis.summary else analysis.verdict))

    def notice(event: NoticeEvent, title: str) -> Notice:
        return Notice(
            event,
            policy.name,
            title,
            source,
            name=outcome.name,
            detail=decision.reason,
            facts=tuple(facts) + _check_facts(checks),
            checks=checks,
            verdict=analysis.verdict if analysis is not None else None,
            at=now,
        )

    rules = canary_policy(settings, policy)
    out: list[Notice] = []
    if decision.action == "complete" and hist is not None:
        starts = [t for t in (hist.last_step_at, hist.tag_changed_at) if t is not None]
        starts += [observation.applied_at] if observation is not None and observation.applied_at else []
        if starts and _within(max(starts) + rules.interval, now, window):
            out.append(notice("canary-complete", f"canary {outcome.name} complete at {outcome.weight}%"))
    elif decision.action == "not-applied" and last_step is not None:
        if _within(last_step + rules.apply_timeout, now, window):
            title = f"canary {outcome.name}: step to {outcome.weight}% not applied after {_when(now - last_step)}"
            out.append(notice("step-not-applied", title))
    elif decision.action == "hold" and decision.notify and outcome.verdict == "fail":
        out.append(notice("canary-attention", f"canary {outcome.name} holds at {outcome.weight}%: analysis failed"))
    held = decision.inconclusive_for
    # The moment the analysis had been inconclusive for notifyAfterInconclusive (0: never told).
    overdue_at = now - held + rules.notify_after if held is not None and rules.notify_after > timedelta(0) else None
    # A step not applied is why its analysis has no data: that notice says it already.
    told = held is not None and held > rules.notify_after and decision.action != "not-applied"
    if held is not None and told and _within(overdue_at, now, window):
        title = f"canary {outcome.name} holds at {outcome.weight}%: analysis inconclusive for {_when(held)}"
        out.append(notice("canary-inconclusive", title))
    return out


def revert_notices(
    policy: Policy, history: History | None, *, now: datetime, window: timedelta, source: NoticeSource
) -> list[Notice]:
    """One notice per commit of a person's that reverted bot changes and landed in this cycle's window."""
    if history is None:
        return []
    by_revert: dict[str, tuple[CommitInfo, list[BotCommit]]] = {}
    for commit in reversed(history.commits):
        revert = commit.reverted_by
        if revert is None or parse_bot_commit(revert) is not None or not _within(revert.landed, now, window):
            continue
        by_revert.setdefault(revert.sha, (revert, []))[1].append(commit)
    return [_revert_notice(policy, revert, undone, source, now) for revert, undone in by_revert.values()]


def _revert_notice(
    policy: Policy, revert: CommitInfo, undone: Sequence[BotCommit], source: NoticeSource, now: datetime
) -> Notice:
    facts: list[tuple[str, str]] = [("Reverted by", revert.author.name), ("Revert", revert.sha[:12])]
    consequences: list[str] = []
    names: list[str] = []
    for commit in undone:
        facts.append((f"Undone {commit.action}", f"{summary_of(commit.commit.subject)} ({commit.sha[:12]})"))
        for change in commit.changes:
            names.append(change.target)
            if commit.action == "image-update":
                consequences.append(f"{change.target} {change.new} is quarantined until a newer tag")
                facts.append(("Quarantined", f"{change.target} {change.new}"))
            elif commit.action in ("canary-step", "promote") and _canary_of(policy, change.target) is not None:
                consequences.append(f"canary {change.target} holds until `gitbot resume {change.target}`")
    first = undone[0]
    what = summary_of(first.commit.subject) + (f" and {len(undone) - 1} more" if len(undone) > 1 else "")
    detail = "; ".join(dict.fromkeys(consequences)) or "gitbot will not apply the change again"
    return Notice(
        "revert-quarantine",
        policy.name,
        f"{revert.author.name} reverted {what}",
        source,
        name=", ".join(dict.fromkeys(names)),
        detail=detail,
        facts=tuple(facts),
        ref=revert.sha,
        link=commit_link(policy.spec.git.url, revert.sha),
        at=now,
    )


def cycle_notices(
    policy: Policy, result: CycleResult, *, now: datetime, window: timedelta, source: NoticeSource
) -> list[Notice]:
    """Everything a delivering cycle tells: reverts seen in history, delivered changes, canaries that ask."""
    notices = revert_notices(policy, result.history, now=now, window=window, source=source)
    plans = {plan.name: plan for plan in result.plans}
    canaries = {outcome.name: outcome for outcome in result.canaries}
    for delivery in result.deliveries:
        plan = plans.get(delivery.name)
        if delivery.outcome in _DELIVERED and plan is not None:
            outcome = canaries.get(plan.name) if plan.action != "image-update" else None
            notices.append(delivery_notice(policy, plan, delivery, outcome, source=source, at=now))
    for outcome in result.canaries:
        notices += canary_notices(policy, outcome, result.history, now=now, window=window, source=source)
    return notices


ManualCommand = Literal["rollback", "promote", "pause", "resume"]
_MANUAL_EVENTS: dict[str, NoticeEvent] = {
    "rollback": "rollback",
    "promote": "canary-step",
    "pause": "canary-paused",
    "resume": "canary-resumed",
}


def command_notice(
    policy: Policy, command: ManualCommand, name: str, delivery: Delivery, *, now: datetime, reason: str = ""
) -> Notice | None:
    """What people hear of a command a person ran: None when it changed nothing (run again after it landed)."""
    if delivery.outcome not in _DELIVERED:
        return None
    summary = summary_of(delivery.subject)
    if command in ("pause", "resume"):
        title = f"canary {name} {command}d by hand"
    else:
        title = _delivery_title(f"{summary} (gitbot {command}, by hand)", delivery, policy.spec.git.branch)
    facts = [("Reason", reason)] if reason else []
    facts.append(_ref_fact(delivery))
    return Notice(
        _MANUAL_EVENTS[command],
        policy.name,
        title,
        command,
        name=name,
        detail=summary if command in ("pause", "resume") else "",
        facts=tuple(facts),
        delivery=_delivered(delivery),
        ref=delivery.ref,
        link=_link(policy, delivery),
        at=now,
    )


def failure_notice(policy: Policy, error_type: str, error: str, *, source: NoticeSource, now: datetime) -> Notice:
    """A cycle that failed as a whole: its error in one line (already masked by the caller)."""
    return Notice(
        "cycle-failed",
        policy.name,
        f"gitbot policy {policy.name}: cycle failed",
        source,
        detail=error,
        facts=(("Error type", error_type), ("Error", error)),
        at=now,
    )
