"""The daemon's cycle runner: stop before delivery, failing cycles, summaries and request counting."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitbot.canary import CanaryDecision
from gitbot.commands.runner import (
    CountingForge,
    CountingRegistry,
    CycleRunner,
    log_problems,
    registry_cache_ttl,
    summarize,
)
from gitbot.config import Policy, load_policy
from gitbot.cycle import CycleResult, Deps
from gitbot.delivery import Delivery
from gitbot.domain import Action, Author, CommitInfo, Notice, Plan
from gitbot.errors import ForgeError, GitbotError, RegistryError
from gitbot.logs import FIELDS, SecretMasker
from gitbot.manifests import Problem, walk_files
from gitbot.planner import CanaryOutcome
from gitbot.ports import ChangeRequest, Checkout, NewCommit, RevertFinish, TreeFile

SECRET = "tok-unit-4e1d-secret"


def write_policy(tmp_path: Path, schedule: str = "{interval: 1s}") -> Policy:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\n"
        f"spec:\n  git: {{url: https://git.example.test/acme/c.git, tokenEnv: T}}\n  schedule: {schedule}\n"
    )
    return load_policy(path)


class Workspace:
    """Counts checkouts; each one raises the next scripted error."""

    def __init__(self, errors: list[GitbotError]) -> None:
        self.errors = errors
        self.checkouts = 0

    @contextmanager
    def checkout(self) -> Iterator[Checkout]:
        self.checkouts += 1
        raise self.errors.pop(0)
        yield  # pragma: no cover


class Tags:
    """A registry that sends `per_call` requests per listing and remembers how many in `requests`."""

    def __init__(self, per_call: int = 1, fail: bool = False) -> None:
        self.per_call = per_call
        self.fail = fail
        self.sent = 0

    @property
    def requests(self) -> dict[str, int]:
        return {"r.example.test": self.sent}

    def list_tags(self, image: str) -> list[str]:
        self.sent += self.per_call
        if self.fail:
            raise RegistryError("registry down")
        return ["1.0.0"]


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, system: str, outcome: str) -> None:
        self.calls.append((system, outcome))


class Notes:
    """A notifier that keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def notify(self, notice: Notice) -> bool:
        self.sent.append((notice.event, notice.title, dict(notice.facts)))
        return True


def make_runner(policy: Policy, workspace: Workspace, notes: Notes, stop: threading.Event) -> CycleRunner:
    def build(p: Policy, **_: Any) -> Deps:
        return Deps(workspace=workspace, registry=Tags(), clock=Clock())

    return CycleRunner(
        [policy],
        env={},
        stop=stop,
        masker=SecretMasker([SECRET]),
        build=build,
        make_notifiers=lambda *_a, **_k: [notes],
    )


def test_a_stop_requested_before_the_cycle_keeps_it_from_starting(tmp_path: Path) -> None:
    policy, workspace, notes, stop = write_policy(tmp_path), Workspace([]), Notes(), threading.Event()
    runner = make_runner(policy, workspace, notes, stop)
    stop.set()
    summary = runner(policy)
    assert (summary.policy, summary.outcome, workspace.checkouts) == ("p", "held", 0)
    assert notes.sent == []


def test_a_failing_cycle_is_summarised_masked_and_notified_once_per_distinct_error(tmp_path: Path) -> None:
    policy, notes = write_policy(tmp_path), Notes()
    workspace = Workspace(
        [
            RegistryError(f"cannot reach registry with {SECRET}"),
            RegistryError(f"cannot reach registry with {SECRET}"),
            ForgeError("GitHub answered 502"),
        ]
    )
    runner = make_runner(policy, workspace, notes, threading.Event())
    first = runner(policy)
    assert (first.outcome, first.error_type) == ("failed", "RegistryError")
    assert first.error == "cannot reach registry with ***"
    assert runner(policy).outcome == "failed"
    third = runner(policy)
    assert third.error_type == "ForgeError"
    assert [(event, fields["Error"]) for event, _text, fields in notes.sent] == [
        ("cycle-failed", "cannot reach registry with ***"),
        ("cycle-failed", "GitHub answered 502"),
    ]
    assert all(SECRET not in str(item) for item in notes.sent)


def plan(name: str, action: Action) -> Plan:
    return Plan("p", name, action, (), (), f"subject {name}", "", (), f"id-{name}")


def test_summary_counts_delivered_changes_by_the_kind_of_their_plan() -> None:
    plans = (plan("app", "image-update"), plan("web", "image-update"), plan("podinfo", "canary-step"))
    deliveries = (
        Delivery("app", "committed", "sha1", "s"),
        Delivery("web", "unchanged", "url", "s"),
        Delivery("podinfo", "opened", "url", "s"),
        Delivery("old", "closed", "url", "s"),
    )
    summary = summarize(CycleResult("p", plans, deliveries, "", 1, "head"), 0.25)
    assert (summary.outcome, dict(summary.changes), summary.duration_seconds) == (
        "changed",
        {"image-update": 1, "canary-step": 1},
        0.25,
    )
    quiet = summarize(CycleResult("p", plans[:1], (Delivery("app", "unchanged", "u", "s"),), "", 1, "h"), 0.1)
    assert (quiet.outcome, dict(quiet.changes)) == ("unchanged", {})


def test_registry_requests_are_counted_as_sent_not_as_calls() -> None:
    recorder = Recorder()
    assert list(CountingRegistry(Tags(per_call=3), recorder).list_tags("r.example.test/a")) == ["1.0.0"]
    assert list(CountingRegistry(Tags(per_call=0), recorder).list_tags("r.example.test/a")) == ["1.0.0"]
    with pytest.raises(RegistryError):
        CountingRegistry(Tags(fail=True), recorder).list_tags("r.example.test/a")
    assert recorder.calls == [("registry", "ok")] * 3 + [("registry", "error")]


class Pulls:
    def find_change_request(self, head: str) -> ChangeRequest | None:
        return None

    def open_change_requests(self, head_prefix: str) -> list[ChangeRequest]:
        raise ForgeError("GitHub is down")

    def closed_change_request(self, head: str) -> ChangeRequest | None:
        return None

    def create_change_request(self, head: str, base: str, title: str, body: str, labels: Any) -> ChangeRequest:
        return ChangeRequest(7, "https://example.test/pull/7", head, base, title, body, "open")

    def update_change_request(self, number: int, title: str, body: str) -> ChangeRequest:
        raise AssertionError("not called")

    def close_change_request(self, number: int, comment: str) -> None:
        return None

    def add_labels(self, number: int, labels: Any) -> None:
        return None

    def comment_change_request(self, number: int, comment: str) -> None:
        return None


def test_forge_operations_are_counted_with_their_outcome() -> None:
    recorder = Recorder()
    forge = CountingForge(Pulls(), recorder)
    assert forge.find_change_request("gitbot/p/app") is None
    assert forge.closed_change_request("gitbot/p/app") is None
    assert forge.create_change_request("gitbot/p/app", "main", "t", "b", ()).number == 7
    with pytest.raises(ForgeError):
        forge.open_change_requests("gitbot/p/")
    assert recorder.calls == [("github", "ok")] * 3 + [("github", "error")]


@pytest.mark.parametrize(
    ("schedule", "ttl"), [("{interval: 1s}", 0.5), ("{interval: 5m}", 60.0), ("{cron: '*/5 * * * *'}", 60.0)]
)
def test_tag_lists_are_never_cached_across_a_whole_interval(tmp_path: Path, schedule: str, ttl: float) -> None:
    assert registry_cache_ttl(write_policy(tmp_path, schedule)) == ttl


class Copy:
    """A working copy on disk that records writes instead of making commits."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self.writes: list[str] = []

    @property
    def root(self) -> Path:
        return self._root

    @property
    def head(self) -> str:
        return "0" * 40

    def files(self, paths: Sequence[str]) -> list[TreeFile]:
        return walk_files(self._root, paths)

    def read(self, files: Sequence[str]) -> dict[str, bytes]:
        return {file: (self._root / file).read_bytes() for file in files}

    def log(self, max_count: int = 500) -> list[CommitInfo]:
        return []

    def commit(self, files: Mapping[str, str], message: str, author: Author) -> str:
        self.writes.append("commit")
        return "1" * 40

    def commit_series(self, commits: Sequence[NewCommit]) -> list[str]:
        return [self.commit(*commit) for commit in commits]

    def revert(
        self, shas: Sequence[str], message: str, author: Author, finish: RevertFinish | None = None
    ) -> str | None:
        self.writes.append("revert")
        return None

    def record(self, message: str, author: Author) -> str:
        self.writes.append("record")
        return "0" * 40

    def reset(self, sha: str) -> None:
        self.writes.append("reset")

    def push(self) -> None:
        self.writes.append("push")

    def push_branch(self, branch: str, sha: str, expected: str | None = None) -> None:
        self.writes.append("push_branch")

    def refresh(self) -> None:
        return None

    def merges_cleanly(self, branch: str, sha: str = "") -> bool:
        return True


class CopyWorkspace:
    def __init__(self, copy: Copy) -> None:
        self.copy = copy

    @contextmanager
    def checkout(self) -> Iterator[Checkout]:
        yield self.copy


class StopWhileListing:
    """A registry whose listing is where the stop signal arrives, between checkout and delivery."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def list_tags(self, image: str) -> list[str]:
        self.stop.set()
        return ["1.0.0", "1.0.1"]


def image_policy(tmp_path: Path) -> Policy:
    """A policy with one image, and its manifest at 1.0.0 in `tmp_path/repo`."""
    (tmp_path / "repo" / "clusters").mkdir(parents=True)
    (tmp_path / "repo" / "clusters" / "app.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: staging}\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        "        - {name: app, image: r.example.test/acme/app:1.0.0}\n"
    )
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
        "  git: {url: https://git.example.test/acme/c.git, paths: [clusters]}\n"
        "  images: [{name: app, repository: r.example.test/acme/app, filter: '1.0.*',\n"
        "            targets: [{resource: Deployment/staging/app}]}]\n"
    )
    return load_policy(path)


def test_a_stop_requested_during_a_cycle_ends_it_before_its_first_commit(tmp_path: Path) -> None:
    policy, stop, copy = image_policy(tmp_path), threading.Event(), Copy(tmp_path / "repo")

    def build(p: Policy, **_: Any) -> Deps:
        return Deps(workspace=CopyWorkspace(copy), registry=StopWhileListing(stop), clock=Clock())

    runner = CycleRunner([policy], env={}, stop=stop, masker=SecretMasker(), build=build)
    summary = runner(policy)
    assert (summary.outcome, dict(summary.changes), copy.writes) == ("held", {}, [])

    # The same cycle without a stop commits and pushes: the guard, not the plan, held it back.
    stop.clear()
    runner = CycleRunner([policy], env={}, stop=threading.Event(), masker=SecretMasker(), build=build)
    assert runner(policy).outcome == "changed"
    assert copy.writes == ["commit", "push"]


def test_summary_reports_each_canary_weight_after_delivery_and_its_verdict() -> None:
    stepped = CanaryDecision("step", 10, 60, "analysis passed at 10%: step to 60%")
    held = CanaryDecision("hold", 60, None, "dwell at 60%: 4m left")
    canaries = (
        CanaryOutcome("podinfo", 10, stepped, plan("podinfo", "canary-step"), verdict="pass"),
        CanaryOutcome("other", 60, held, None, verdict="inconclusive"),
    )
    delivered = (Delivery("podinfo", "committed", "sha", "s"),)
    summary = summarize(CycleResult("p", (plan("podinfo", "canary-step"),), delivered, "", 1, "h", canaries), 0.1)
    assert summary.canaries == {"podinfo": (60, "pass"), "other": (60, "inconclusive")}
    # Only the canary that changed nothing holds, and the summary says why.
    assert summary.holds == {"other": "dwell at 60%: 4m left"}
    # A step that was planned but not delivered leaves the weight where git has it.
    unchanged = (Delivery("podinfo", "unchanged", "url", "s"),)
    assert summarize(CycleResult("p", (), unchanged, "", 1, "h", canaries), 0.1).canaries["podinfo"] == (10, "pass")


class Fixed:
    def __init__(self, tags: list[str]) -> None:
        self.tags = tags

    def list_tags(self, image: str) -> list[str]:
        return list(self.tags)


class BrokenNotifier:
    def notify(self, notice: Notice) -> bool:
        raise RuntimeError(f"notifier broke on {notice.event}")


def test_a_notifier_that_raises_does_not_fail_a_cycle_that_delivered(tmp_path: Path) -> None:
    policy, copy, notes = image_policy(tmp_path), Copy(tmp_path / "repo"), Notes()

    def build(p: Policy, **_: Any) -> Deps:
        return Deps(workspace=CopyWorkspace(copy), registry=Fixed(["1.0.0", "1.0.1"]), clock=Clock())

    runner = CycleRunner(
        [policy],
        env={},
        stop=threading.Event(),
        masker=SecretMasker(),
        build=build,
        make_notifiers=lambda *_a, **_k: [BrokenNotifier(), notes],
    )
    summary = runner(policy)
    assert (summary.outcome, dict(summary.changes)) == ("changed", {"image-update": 1})
    assert copy.writes == ["commit", "push"]
    # The notifiers after the broken one still hear about the change.
    assert [event for event, _text, _fields in notes.sent] == ["image-update"]


def test_problem_files_of_a_cycle_are_logged_one_event_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    policy = write_policy(tmp_path)
    problems = (
        Problem("clusters/big.yaml", None, "larger than the 1 MiB limit for a manifest; not read"),
        Problem("policies/p.yaml", 9, "spec.images[0].targets[0]: image app: not planned this cycle"),
    )
    with caplog.at_level(logging.INFO, logger="gitbot.run"):
        log_problems(policy, CycleResult("p", (), (), "", 1, "head", problems=problems))
    events = [(r.getMessage(), r.levelname, r.__dict__.get(FIELDS)) for r in caplog.records]
    assert events == [
        (
            "problem file",
            "WARNING",
            {"policy": "p", "file": "clusters/big.yaml", "why": "larger than the 1 MiB limit for a manifest; not read"},
        ),
        (
            "problem file",
            "WARNING",
            {"policy": "p", "file": "policies/p.yaml:9", "why": problems[1].why},
        ),
    ]
