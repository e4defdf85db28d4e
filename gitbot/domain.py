"""Value types shared by every layer: targets, edits, tag selections, commits, changes, plans, verdicts.

Everything here is an immutable value with no behaviour beyond small derived properties. This module imports
nothing from gitbot but `errors` and nothing outside the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

TargetKind = Literal["image", "tag", "name", "digest", "weight"]
Verdict = Literal["pass", "fail", "inconclusive"]
Action = Literal["image-update", "canary-step", "rollback", "promote"]


@dataclass(frozen=True)
class Destination:
    """Where a route entry sends traffic, as its manifest names it: (field, value) pairs in the route kind's
    own order (`host`, `subset`... for Istio; `name`, `namespace`, `port`... for a Gateway API backendRef)."""

    fields: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        return next((value for name, value in self.fields if name == key), None)

    def __str__(self) -> str:
        return ",".join(f"{name}={value}" for name, value in self.fields)


@dataclass(frozen=True)
class Target:
    """A scalar gitbot manages, found by the scanner.

    `pointer` is an RFC 6901 JSON Pointer inside document `document` (0-based) of `file`; `line` and
    `column` are 1-based and point at the first character of the value's token. `resource` is
    `Kind/namespace/name` (namespace empty when absent).

    `source` says which rule found it (`container`, `kustomize`, `helm-values`, `marker`, `virtualservice`,
    `httproute`). `ref` is the whole image reference a name/tag/digest part belongs to, when known.
    A weight's `destination` is where its entry sends traffic, written `field=value,...` for people, and
    `backend` the same as a typed value, which is what code compares. An `implicit` weight is not written:
    `value` is the route kind's default, `line`/`column` point at its entry, and an edit adds the `weight`.
    `unmanaged` gives the reason another controller owns the resource (`reconcile-disabled`,
    `flagger`) so that callers which move canaries can refuse it; None when gitbot may manage it.
    """

    file: str
    document: int
    pointer: str
    line: int
    column: int
    kind: TargetKind
    resource: str
    value: str
    container: str | None = None
    marker: str | None = None
    route: int | None = None
    destination: str | None = None
    source: str = ""
    ref: str | None = None
    unmanaged: str | None = None
    backend: Destination | None = None
    implicit: bool = False


@dataclass(frozen=True)
class Assignment:
    """Set the scalar at `pointer` in document `document` to `value` (a string, quoted as needed)."""

    document: int
    pointer: str
    value: str


@dataclass(frozen=True)
class TagSelection:
    """The outcome of choosing a tag: the newest match and why.

    `candidates` holds the matching tags newest first (quarantined ones removed); `quarantined` the
    matching tags that were skipped; `ignored` the tags that are not valid OCI tags.
    """

    selected: str | None
    candidates: tuple[str, ...]
    quarantined: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class CommitInfo:
    """One commit as history reads it: trailers are parsed from the end of the message.

    `landed_at` is when the commit reached the branch it was read from (see `gitbot.history.landing_order`),
    None when not known; it is not part of the commit, so two reads of one commit compare equal.
    """

    sha: str
    parents: tuple[str, ...]
    author: Author
    committed_at: datetime
    subject: str
    body: str
    trailers: tuple[tuple[str, str], ...] = ()
    landed_at: datetime | None = field(default=None, compare=False)

    @property
    def landed(self) -> datetime:
        """When the commit reached the branch, else (not known) its own commit time."""
        return self.landed_at or self.committed_at

    def trailer(self, key: str) -> str | None:
        """The last value of trailer `key` (case-insensitive), or None."""
        found = None
        for name, value in self.trailers:
            if name.lower() == key.lower():
                found = value
        return found


@dataclass(frozen=True)
class Change:
    """One value that a plan changes: file, resource, field (pointer), old and new value."""

    file: str
    document: int
    pointer: str
    resource: str
    kind: TargetKind
    old: str
    new: str


@dataclass(frozen=True)
class CheckResult:
    """One analysis check: the measured values, the threshold and what it concluded."""

    name: str
    verdict: Verdict
    canary: float | None
    stable: float | None
    threshold: str
    detail: str = ""
    # Sequential checks only: canary/GA effect, the e-value, requests on each side since `since` (the step).
    sequential: bool = False
    effect: float | None = None
    e_value: float | None = None
    requests: tuple[float | None, float | None] = (None, None)
    since: datetime | None = None
    # At 100 percent GA takes no traffic: GA's side is counted over this period before the step to 100%.
    stable_period: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class Analysis:
    """A complete analysis run over one window."""

    verdict: Verdict
    checks: tuple[CheckResult, ...]
    window_start: datetime
    window_end: datetime
    summary: str = ""


@dataclass(frozen=True)
class Plan:
    """One deliverable unit: the new contents of the files it touches and the message that explains it."""

    policy: str
    name: str
    action: Action
    changes: tuple[Change, ...]
    files: tuple[tuple[str, str], ...]
    subject: str
    body: str
    trailers: tuple[tuple[str, str], ...]
    plan_id: str
    evidence: str = ""
    reverts: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class CosignSignature:
    """One cosign signature as stored in a registry: the signed payload bytes and the base64 signature."""

    payload: bytes
    signature: str


@dataclass(frozen=True)
class TagFacts:
    """What a registry says of one tag: the manifest digest it serves and, when asked for, when the image
    was created (None when its config has no `created`) and the cosign signatures stored for that digest."""

    digest: str
    created: datetime | None = None
    signatures: tuple[CosignSignature, ...] = ()


NoticeEvent = Literal[
    "image-update",
    "canary-step",
    "canary-complete",
    "canary-promoted",
    "rollback",
    "canary-inconclusive",
    "canary-attention",
    "step-not-applied",
    "revert-quarantine",
    "canary-paused",
    "canary-resumed",
    "cycle-failed",
]
NoticeSource = Literal["daemon", "once", "rollback", "promote", "pause", "resume"]
# How a change reached people: pushed to the branch, or proposed in a new or updated pull request.
NoticeDelivery = Literal["committed", "opened", "updated"]


@dataclass(frozen=True)
class Notice:
    """One thing a person should hear of: what happened, to what, the figures that decided, and a link.

    `title` is one line; `detail` the reason in a sentence or two. `facts` are the figures as label/value
    pairs, in order; `checks` the analysis checks that decided (empty when none ran). `ref` is the commit
    sha or pull request URL the change is in (with `delivery` saying which); `link` is a web address of it
    when one is known.
    """

    event: NoticeEvent
    policy: str
    title: str
    source: NoticeSource
    name: str = ""
    detail: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    checks: tuple[CheckResult, ...] = ()
    verdict: Verdict | None = None
    delivery: NoticeDelivery | None = None
    ref: str = ""
    link: str | None = None
    at: datetime | None = None
