"""Protocols for every external system gitbot talks to.

The cycle, delivery and the commands run by hand depend only on these; `gitbot/adapters/` holds the one
real implementation of each, and the composition root (the CLI and the service) is the only place that
builds adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from gitbot.domain import Author, CommitInfo, Notice, TagFacts

# Run by `Checkout.revert` once the revert is applied to the working tree but not committed: the further
# files to write (relative path -> text) and the message to commit with, or None to give the revert up.
RevertFinish = Callable[[], "tuple[Mapping[str, str], str] | None"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class Registry(Protocol):
    def list_tags(self, image: str) -> Sequence[str]:
        """Every tag of `image` as the registry returns it (unfiltered, unvalidated).

        A cycle looks up its images side by side: this is called from several threads at once.
        """
        ...


@dataclass(frozen=True)
class Workload:
    """A workload whose served requests are counted: its namespace, its name and whose view counts them
    (the mesh's reporter: `destination` is the server's own proxy)."""

    namespace: str
    name: str
    reporter: str = "destination"


@dataclass(frozen=True)
class Requests:
    """How many requests `workload` served."""

    workload: Workload


@dataclass(frozen=True)
class SuccessRate:
    """Percent of the requests `workload` served that were not server errors (5xx); no data without requests."""

    workload: Workload


@dataclass(frozen=True)
class LatencyQuantile:
    """The `quantile` (0..1) of the time in milliseconds `workload` took to serve its requests."""

    workload: Workload
    quantile: float


@dataclass(frozen=True)
class CanaryShare:
    """Percent of the requests to `canary` and `stable` together that `canary` served; no data when neither
    served any."""

    canary: Workload
    stable: Workload


@dataclass(frozen=True)
class CustomQuery:
    """A user's own query, opaque to gitbot: `text` in the source's query language, whose single value is the
    answer. The source fills its placeholders: `{namespace}` (the canary's), `{canary}` and `{stable}` (the
    workloads' names) and `{window}` (the measured window in the language's own duration syntax)."""

    text: str
    canary: Workload
    stable: Workload


# One figure the analysis asks a metrics source for, measured over a window.
Measure = Requests | SuccessRate | LatencyQuantile | CanaryShare | CustomQuery


class Metrics(Protocol):
    """A metrics source: the figures the canary analysis judges. A new source implements these four methods."""

    def measure(self, measure: Measure, start: datetime, end: datetime) -> float | None:
        """`measure` over the window from `start` to `end` (whole seconds), as seen at `end`; None for no data,
        NaN or an infinity. Raises MetricsError (one line, no credentials) when the source cannot answer."""
        ...

    def measure_series(
        self, measure: Measure, start: datetime, end: datetime, step: timedelta, window: timedelta
    ) -> list[tuple[float, float]]:
        """`measure` at `start`, `start + step`, ... up to `end`, each over the `window` (whole seconds) before
        it, as (unix seconds, value) pairs in time order; points without data are left out."""
        ...

    def request_counts(self, workload: Workload, start: datetime, end: datetime) -> tuple[float, float] | None:
        """(requests, server errors (5xx)) that `workload` served from `start` to `end`; None for no data."""
        ...

    def latency_buckets(self, workload: Workload, start: datetime, end: datetime) -> list[tuple[float, float]]:
        """Requests `workload` served from `start` to `end` that took at most each bound, as (bound in
        milliseconds, cumulative count), ascending, the +Inf bound last; empty for no data."""
        ...


@dataclass(frozen=True)
class TreeFile:
    """A file of a checkout, found by `Checkout.files`: its path, its git blob id ("" when unknown), its size."""

    path: str
    blob: str
    size: int


class NewCommit(NamedTuple):
    """One commit to make: its files (relative path -> text), its message and its author."""

    files: Mapping[str, str]
    message: str
    author: Author


class Checkout(Protocol):
    """A working copy of the policy's branch for one cycle.

    `files` and `read` answer from git's objects; only `root` (and whatever writes) needs the files on disk,
    so a cycle that changes nothing need not write a working tree at all.
    """

    @property
    def root(self) -> Path:
        """The working tree on disk, written out when first asked for."""
        ...

    def files(self, paths: Sequence[str]) -> list[TreeFile]:
        """The files at `paths` (files as named, folders walked for `*.yaml`/`*.yml`, hidden folders left
        out), in the order a walk of the working tree meets them.

        Raises MissingPathError for a path the branch does not have, ManifestError for a path that is a
        symbolic link, leads outside the repository or is not a regular file or folder.
        """
        ...

    def read(self, files: Sequence[str]) -> dict[str, bytes]:
        """The bytes of `files` (paths relative to the root) as the working copy holds them."""
        ...

    @property
    def head(self) -> str: ...

    def log(self, max_count: int = 500) -> list[CommitInfo]:
        """Commits reachable from HEAD in the order they landed on the branch, newest first."""
        ...

    def commit(self, files: Mapping[str, str], message: str, author: Author) -> str:
        """Write `files` (relative path -> text), commit them on the current branch, return the sha."""
        ...

    def commit_series(self, commits: Sequence[NewCommit]) -> list[str]:
        """Commit each of `commits` on top of the one before (`commit` of each in turn); their shas in order."""
        ...

    def record(self, message: str, author: Author) -> str:
        """Commit nothing but `message` (a marker the bot owns, e.g. a canary pause); return the sha."""
        ...

    def revert(
        self, shas: Sequence[str], message: str, author: Author, finish: RevertFinish | None = None
    ) -> str | None:
        """Revert `shas` (newest first) as one commit; None when the revert conflicts (nothing changed).

        With `finish`, the files it returns are written over the reverted tree and committed in the same
        commit, with its message instead of `message`; when it returns None nothing is changed (as on a conflict).
        """
        ...

    def reset(self, sha: str) -> None:
        """Move the working branch back to `sha` (local only), dropping local commits after it."""
        ...

    def push(self) -> None:
        """Push the current branch to the policy's branch; never forced.

        Raises PushRejectedError when the remote moved (non-fast-forward).
        """
        ...

    def push_branch(self, branch: str, sha: str, expected: str | None = None) -> None:
        """Force-push `sha` to the bot's own branch `branch` (never the environment branch).

        With `expected`, only while the branch still points at that sha; PushRejectedError when it moved.
        """
        ...

    def refresh(self) -> None:
        """Fetch the remote and move the working branch to the remote head (after a rejected push)."""
        ...

    def merges_cleanly(self, branch: str, sha: str = "") -> bool:
        """Whether the bot's own `branch` merges into HEAD without a conflict; False when it is gone.

        `sha` is the branch head as the forge reports it: when this repository has that commit, nothing is
        fetched. Changes no ref and not the working copy.
        """
        ...


class Workspace(Protocol):
    def checkout(self) -> AbstractContextManager[Checkout]:
        """Fetch into the cache and yield a fresh working copy; cleaned up on exit."""
        ...


@dataclass(frozen=True)
class ChangeRequest:
    """A change proposed on the forge for review: a GitHub pull request, a GitLab merge request.

    The bot opens one per plan, from its own head branch into the environment branch, and finds it again by
    its head branch and the plan id hidden in its body.
    """

    # The forge's number for it within the repository (a pull request's number, a merge request's iid).
    number: int
    # Where a person reviews it.
    url: str
    # The branch it proposes (source branch), and the branch it goes into (target branch).
    head: str
    base: str
    title: str
    # Markdown description.
    body: str
    # "open", or "closed" for one closed with or without merging (`merged_at` tells which).
    state: str
    # When it was merged; None when it was not.
    merged_at: datetime | None = None
    # Set by `Forge.create_change_request` only: "opened" when it created it; "unchanged" or "updated" when one
    # from the same head was already open (another replica opened it first) and it left or edited that one.
    created: Literal["opened", "unchanged", "updated"] = "opened"
    # The commit the head branch points at, as the forge last saw it ("" when unknown).
    head_sha: str = ""
    # Label names as the forge last listed them (a label added since is not in it).
    labels: tuple[str, ...] = ()


class Forge(Protocol):
    """Change requests on one repository of a forge (GitHub pull requests; a GitLab adapter would speak of
    merge requests). Every method raises ForgeError (or AuthError for refused credentials) with a one-line
    message that never holds the token; the cycle and the commands use nothing else of the forge."""

    def find_change_request(self, head: str) -> ChangeRequest | None:
        """The open change request whose head branch is `head`, if any."""
        ...

    def open_change_requests(self, head_prefix: str) -> list[ChangeRequest]:
        """Open change requests whose head branch starts with `head_prefix`."""
        ...

    def closed_change_request(self, head: str) -> ChangeRequest | None:
        """The most recently opened change request from `head` that was closed without merging, if any."""
        ...

    def create_change_request(
        self, head: str, base: str, title: str, body: str, labels: Sequence[str]
    ) -> ChangeRequest:
        """Open a change request from `head` into `base` with `labels`; when one from `head` is already open
        (another replica, or an earlier attempt that timed out, opened it), update that one instead and say so
        in `created`. Never opens a second one from the same head."""
        ...

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        """Add `labels` to change request `number`, keeping those it has."""
        ...

    def update_change_request(self, number: int, title: str, body: str) -> ChangeRequest:
        """Set the title and body of change request `number`."""
        ...

    def close_change_request(self, number: int, comment: str) -> None:
        """Comment on change request `number` and close it unmerged; nothing happens if it is already closed."""
        ...

    def comment_change_request(self, number: int, comment: str) -> None:
        """Add a comment to change request `number`, open or not; it stays as it is otherwise."""
        ...


class Notifier(Protocol):
    def notify(self, notice: Notice) -> bool:
        """Post `notice`; False (logged, never raised) when it could not be delivered."""
        ...


@runtime_checkable
class TagInspector(Protocol):
    """A `Registry` that can also describe one tag; needed by images with minAge, digest or verify."""

    def inspect_tag(self, image: str, tag: str, *, created: bool = False, signatures: bool = False) -> TagFacts:
        """The manifest digest `tag` of `image` serves now; with `created`, when its image was created; with
        `signatures`, the cosign signatures stored under that digest's `.sig` tag (none when it has none)."""
        ...
