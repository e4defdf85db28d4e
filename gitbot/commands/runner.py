"""The daemon's cycle runner: policy -> one reconcile cycle -> `CycleSummary`, logs and notifications.

Owns what `gitbot run` does around `run_cycle`: adapters built once per policy and reused across cycles (so
registry caches, tokens and git clones carry over), request counting for /metrics, one structured event per
cycle and per delivered change, notifications (`gitbot.notices`) of what a cycle did and of failing cycles,
and the stop rule: a
cycle whose stop was requested before delivery does not start. It does no scheduling (that is
`gitbot.service`) and adds nothing to the pure modules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from gitbot.adapters.notify import notifiers_for, send_notices
from gitbot.commands.announce import notice_window
from gitbot.commands.compose import build_deps
from gitbot.config import Policy
from gitbot.cycle import CycleResult, Deps, run_cycle
from gitbot.domain import Author, CommitInfo, TagFacts
from gitbot.errors import ConfigError, GitbotError, RegistryError
from gitbot.logs import SecretMasker, log_event
from gitbot.notices import cycle_notices, failure_notice
from gitbot.ports import (
    ChangeRequest,
    Checkout,
    Forge,
    NewCommit,
    Notifier,
    Registry,
    RevertFinish,
    TagInspector,
    TreeFile,
    Workspace,
)
from gitbot.service import CycleSummary

_log = logging.getLogger("gitbot.run")
T = TypeVar("T")
# Called with (system, outcome) for every request to an external system, e.g. ServiceMetrics.api_request.
RequestRecorder = Callable[[str, str], None]
DELIVERED = frozenset({"committed", "opened", "updated"})
# A tag list is cached at most this long, and never longer than half a policy's interval, so that every
# scheduled cycle asks the registry (a cheap conditional request) and sees a tag pushed since the last one.
MAX_REGISTRY_CACHE_SECONDS = 60.0


def registry_cache_ttl(policy: Policy) -> float:
    """Seconds a tag list may be reused between cycles of `policy`."""
    interval = policy.spec.schedule.interval
    if interval is None:
        return MAX_REGISTRY_CACHE_SECONDS
    return min(MAX_REGISTRY_CACHE_SECONDS, interval.total_seconds() / 2)


class CountingRegistry:
    """A `Registry` that reports its HTTP requests (or, lacking a counter, its calls) as `registry` requests."""

    def __init__(self, inner: Registry, record: RequestRecorder) -> None:
        self._inner = inner
        self._record = record

    def _sent(self) -> int | None:
        # Lookups run side by side: what this thread's own calls sent, where the registry counts that.
        here = getattr(self._inner, "sent_by_this_thread", None)
        if isinstance(here, int):
            return here
        counts = getattr(self._inner, "requests", None)
        return sum(counts.values()) if isinstance(counts, Mapping) else None

    def list_tags(self, image: str) -> Sequence[str]:
        before = self._sent()
        outcome = "error"
        try:
            tags = self._inner.list_tags(image)
            outcome = "ok"
            return tags
        finally:
            after = self._sent()
            # A cached answer sends nothing; a retried one sends several requests.
            count = 1 if before is None or after is None else after - before
            for _ in range(count):
                self._record("registry", outcome)

    def inspect_tag(self, image: str, tag: str, *, created: bool = False, signatures: bool = False) -> TagFacts:
        """`TagInspector` through the wrapped registry, counted as `list_tags` is."""
        inner = self._inner
        if not isinstance(inner, TagInspector):
            raise RegistryError("this registry client cannot report digests, creation times or signatures")
        before = self._sent()
        outcome = "error"
        try:
            facts = inner.inspect_tag(image, tag, created=created, signatures=signatures)
            outcome = "ok"
            return facts
        finally:
            after = self._sent()
            count = 1 if before is None or after is None else after - before
            for _ in range(count):
                self._record("registry", outcome)


class CountingForge:
    """A `Forge` that reports every API operation as a `github` request, `ok` or `error`."""

    def __init__(self, inner: Forge, record: RequestRecorder) -> None:
        self._inner = inner
        self._record = record

    def _counted(self, call: Callable[[], T]) -> T:
        try:
            result = call()
        except Exception:
            self._record("github", "error")
            raise
        self._record("github", "ok")
        return result

    def find_change_request(self, head: str) -> ChangeRequest | None:
        return self._counted(lambda: self._inner.find_change_request(head))

    def open_change_requests(self, head_prefix: str) -> list[ChangeRequest]:
        return self._counted(lambda: self._inner.open_change_requests(head_prefix))

    def closed_change_request(self, head: str) -> ChangeRequest | None:
        return self._counted(lambda: self._inner.closed_change_request(head))

    def create_change_request(
        self, head: str, base: str, title: str, body: str, labels: Sequence[str]
    ) -> ChangeRequest:
        return self._counted(lambda: self._inner.create_change_request(head, base, title, body, labels))

    def update_change_request(self, number: int, title: str, body: str) -> ChangeRequest:
        return self._counted(lambda: self._inner.update_change_request(number, title, body))

    def close_change_request(self, number: int, comment: str) -> None:
        self._counted(lambda: self._inner.close_change_request(number, comment))

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        self._counted(lambda: self._inner.add_labels(number, labels))

    def comment_change_request(self, number: int, comment: str) -> None:
        self._counted(lambda: self._inner.comment_change_request(number, comment))


class StopBeforeDelivery(GitbotError):
    """The service is stopping and this cycle had not written anything yet; it ends without delivering."""


class GuardedCheckout:
    """A `Checkout` that refuses to commit or push once `stop` is set.

    A cycle's first write is a commit and its last a push, so a stop requested before the first commit
    delivers nothing, and one requested between the commits and the push drops the local commits with the
    working copy: nothing is ever half-pushed.
    """

    def __init__(self, inner: Checkout, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def _check(self, action: str) -> None:
        if self._stop.is_set():
            raise StopBeforeDelivery(f"stopping: {action} not started")

    @property
    def root(self) -> Path:
        return self._inner.root

    @property
    def head(self) -> str:
        return self._inner.head

    def files(self, paths: Sequence[str]) -> list[TreeFile]:
        return self._inner.files(paths)

    def read(self, files: Sequence[str]) -> dict[str, bytes]:
        return self._inner.read(files)

    def log(self, max_count: int = 500) -> list[CommitInfo]:
        return self._inner.log(max_count)

    def commit(self, files: Mapping[str, str], message: str, author: Author) -> str:
        self._check("commit")
        return self._inner.commit(files, message, author)

    def commit_series(self, commits: Sequence[NewCommit]) -> list[str]:
        self._check("commit")
        return self._inner.commit_series(commits)

    def revert(
        self, shas: Sequence[str], message: str, author: Author, finish: RevertFinish | None = None
    ) -> str | None:
        self._check("revert")
        return self._inner.revert(shas, message, author, finish)

    def record(self, message: str, author: Author) -> str:
        self._check("record")
        return self._inner.record(message, author)

    def reset(self, sha: str) -> None:
        self._inner.reset(sha)

    def push(self) -> None:
        self._check("push")
        self._inner.push()

    def push_branch(self, branch: str, sha: str, expected: str | None = None) -> None:
        self._check("push")
        self._inner.push_branch(branch, sha, expected)

    def refresh(self) -> None:
        self._inner.refresh()

    def merges_cleanly(self, branch: str, sha: str = "") -> bool:
        return self._inner.merges_cleanly(branch, sha)


class GuardedWorkspace:
    """A `Workspace` whose checkouts are `GuardedCheckout`s."""

    def __init__(self, inner: Workspace, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    @contextmanager
    def checkout(self) -> Iterator[Checkout]:
        with self._inner.checkout() as checkout:
            yield GuardedCheckout(checkout, self._stop)


def _note_logger(policy: str) -> Callable[[str], None]:
    def note(message: str) -> None:
        log_event(_log, "cycle note", policy=policy, note=message)

    return note


def log_problems(policy: Policy, result: CycleResult) -> None:
    """One event per file the cycle could not read, and per target it could not plan because of one."""
    for problem in result.problems:
        where = problem.file if problem.line is None else f"{problem.file}:{problem.line}"
        # What a problem file left out of the cycle (an image or canary) is an error for that one alone.
        if problem.blocks is None:
            log_event(_log, "problem file", logging.WARNING, policy=policy.name, file=where, why=problem.why)
        else:
            log_event(
                _log,
                "problem file",
                logging.ERROR,
                policy=policy.name,
                file=where,
                why=problem.why,
                left_out=problem.blocks,
            )


def summarize(result: CycleResult, duration: float) -> CycleSummary:
    """The service's view of a finished cycle: delivered changes counted by the kind of their plan."""
    kinds = {plan.name: plan.action for plan in result.plans}
    changes: Counter[str] = Counter()
    for delivery in result.deliveries:
        if delivery.outcome in DELIVERED:
            changes[kinds.get(delivery.name, "image-update")] += 1
    # Only a commit on the branch moves the weight the cluster gets; a pull request proposes one.
    committed = {d.name for d in result.deliveries if d.outcome == "committed"}
    proposing = {d.name for d in result.deliveries if d.outcome in ("opened", "updated", "unchanged")}
    canaries: dict[str, tuple[int, str]] = {}
    proposed: dict[str, int] = {}
    for outcome in result.canaries:
        to = outcome.decision.to_weight if outcome.decision is not None else None
        canaries[outcome.name] = (
            to if to is not None and outcome.name in committed else outcome.weight,
            outcome.verdict,
        )
        if to is not None and outcome.name in proposing and outcome.name not in committed:
            proposed[outcome.name] = to
    return CycleSummary(
        policy=result.policy,
        outcome="changed" if changes else "unchanged",
        changes=dict(changes),
        duration_seconds=duration,
        canaries=canaries,
        proposed=proposed,
        holds={outcome.name: outcome.held for outcome in result.canaries if outcome.held is not None},
        lookup_failures=result.failures,
        problem_files=len({problem.file for problem in result.problems if problem.scope == "file"}),
        left_out=tuple(problem.blocks for problem in result.problems if problem.blocks is not None),
    )


@dataclass
class _PolicyState:
    deps: Deps
    notifiers: list[Notifier]
    failing: str | None = None


class CycleRunner:
    """`Runner` for `gitbot.service`: one delivering cycle of a policy per call, never raising a GitbotError.

    `stop` is the service's stop event: once set, a cycle that has not started yet does not start and a
    running one ends before its first commit or push (outcome `held` for both). Adapters and notifiers of
    every policy are built in the constructor, so a missing secret is a ConfigError at start rather than a
    failure at the first tick.
    """

    def __init__(
        self,
        policies: Sequence[Policy],
        *,
        env: Mapping[str, str],
        stop: threading.Event,
        masker: SecretMasker,
        record_request: RequestRecorder | None = None,
        build: Callable[..., Deps] = build_deps,
        make_notifiers: Callable[..., list[Notifier]] = notifiers_for,
    ) -> None:
        self.stop = stop
        self.masker = masker
        record = record_request or (lambda _system, _outcome: None)
        self._states: dict[str, _PolicyState] = {}
        for policy in policies:
            try:
                deps = build(policy, need_forge=True, env=env, registry_cache_ttl=registry_cache_ttl(policy))
            except ConfigError as exc:
                # Adapters name the field (spec.git.tokenEnv); with several policies the file matters too.
                raise ConfigError(exc.message, where=exc.where or policy.source, hint=exc.hint) from None
            deps = replace(
                deps,
                workspace=GuardedWorkspace(deps.workspace, stop),
                registry=CountingRegistry(deps.registry, record),
                forge=CountingForge(deps.forge, record) if deps.forge is not None else None,
                log=_note_logger(policy.name),
            )
            notifiers = make_notifiers(policy, env, on_request=record, masker=masker)
            self._states[policy.name] = _PolicyState(deps, notifiers)

    def __call__(self, policy: Policy) -> CycleSummary:
        state = self._states[policy.name]
        if self.stop.is_set():
            log_event(_log, "cycle not started: stopping", policy=policy.name)
            return CycleSummary(policy=policy.name, outcome="held")
        started = time.monotonic()
        try:
            result = run_cycle(policy, state.deps, deliver=True)
        except StopBeforeDelivery as exc:
            log_event(_log, "cycle ended before delivery: stopping", policy=policy.name, step=exc.message)
            return CycleSummary(policy=policy.name, outcome="held", duration_seconds=time.monotonic() - started)
        except GitbotError as exc:
            summary = CycleSummary(
                policy=policy.name,
                outcome="failed",
                duration_seconds=time.monotonic() - started,
                error=self.masker.mask(exc.one_line()),
                error_type=type(exc).__name__,
            )
            self._failed(policy, state, summary)
            return summary
        except Exception as exc:
            text = self.masker.mask(str(exc) or type(exc).__name__)
            self._failed(policy, state, CycleSummary(policy.name, "failed", error=text, error_type=type(exc).__name__))
            raise
        log_problems(policy, result)
        summary = summarize(result, time.monotonic() - started)
        state.failing = None
        self._delivered(policy, state, result)
        return summary

    def _failed(self, policy: Policy, state: _PolicyState, summary: CycleSummary) -> None:
        # Backoff retries a broken policy for hours; one message per distinct failure is enough.
        if state.failing == summary.error:
            return
        state.failing = summary.error
        notice = failure_notice(
            policy, summary.error_type or "unknown", summary.error or "", source="daemon", now=state.deps.clock.now()
        )
        send_notices(state.notifiers, [notice], self.masker)

    def _delivered(self, policy: Policy, state: _PolicyState, result: CycleResult) -> None:
        kinds = {plan.name: plan.action for plan in result.plans}
        for delivery in result.deliveries:
            log_event(
                _log,
                "change",
                policy=policy.name,
                name=delivery.name,
                kind=kinds.get(delivery.name, "image-update"),
                outcome=delivery.outcome,
                ref=delivery.ref,
                subject=delivery.subject,
            )
        now = state.deps.clock.now()
        notices = cycle_notices(policy, result, now=now, window=notice_window(policy, now), source="daemon")
        # The change is already delivered: a broken notifier never turns the cycle into a failure (which would
        # skip ticks and count a delivered change as none); send_notices logs and never raises.
        send_notices(state.notifiers, notices, self.masker)
