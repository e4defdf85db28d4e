"""Which matching tag may be proposed, by what the registry says of it: release age, digest and signature.

Owns the walk over an image's matching tags, newest first, that stops at the first tag that qualifies
(created at least `minAge` ago, and signed under the policy's cosign key when it asks for that), and the
reasons the tags before it were skipped. The facts of a tag come from an `inspect` function the reconcile
shell passes in (one registry request or a cached answer per tag considered), so this module does no I/O
itself and never asks about a tag it does not need: it never walks past the tag the targets run now
(nothing older is proposed) nor past `MAX_CONSIDERED` tags.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gitbot.domain import TagFacts, TagSelection
from gitbot.signatures import judge

if TYPE_CHECKING:
    from gitbot.signatures import PublicKey

# The most tags one image's walk inspects in a cycle; a longer run of unqualified tags is reported, not walked.
MAX_CONSIDERED = 20

Inspect = Callable[[str], TagFacts]


@dataclass(frozen=True)
class Gate:
    """What a tag must show before it is a candidate, and whether its digest is written."""

    min_age: timedelta | None = None
    pin: bool = False
    key: PublicKey | None = None

    @property
    def needs_facts(self) -> bool:
        return self.min_age is not None or self.pin or self.key is not None


@dataclass(frozen=True)
class Vetting:
    """The outcome of a walk: the tag chosen (None: none qualified), its digest, and the tags skipped."""

    chosen: str | None
    digest: str | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    note: str = ""


def format_age(age: timedelta) -> str:
    seconds = max(int(age.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def why_not(facts: TagFacts, gate: Gate, now: datetime) -> str | None:
    """None when the tag described by `facts` qualifies under `gate` at `now`; otherwise why it does not."""
    if gate.min_age is not None:
        if facts.created is None:
            return "its image has no creation time, which minAge needs"
        age = now - facts.created
        if age < gate.min_age:
            return f"created {format_age(age)} ago, younger than minAge {format_age(gate.min_age)}"
    if gate.key is not None:
        problem = judge(facts.signatures, facts.digest, gate.key)
        if problem is not None:
            return problem
    return None


def vet(
    candidates: Sequence[str], gate: Gate, inspect: Inspect, now: datetime, *, running: Collection[str] = ()
) -> Vetting:
    """Walk `candidates` (newest first) and choose the first that qualifies.

    The walk stops at a tag in `running` (what the targets run now), qualified or not: an older tag would
    never be proposed, so nothing beyond it is asked about.
    """
    skipped: list[tuple[str, str]] = []
    for count, tag in enumerate(candidates, start=1):
        if count > MAX_CONSIDERED:
            note = f"no tag qualified among the newest {MAX_CONSIDERED}; older tags were not inspected"
            return Vetting(None, None, tuple(skipped), note)
        facts = inspect(tag)
        reason = why_not(facts, gate, now)
        if reason is None:
            return Vetting(tag, facts.digest, tuple(skipped))
        skipped.append((tag, reason))
        if tag in running:
            break
    return Vetting(None, None, tuple(skipped))


def narrow(selection: TagSelection, vetting: Vetting | None) -> TagSelection:
    """`selection` with the vetted tag selected (the matching tags stay as they are, for ordering)."""
    if vetting is None:
        return selection
    return replace(selection, selected=vetting.chosen)


def skipped_text(vetting: Vetting) -> str:
    """One sentence listing the tags skipped and why, for a commit body or `gitbot tags`."""
    if not vetting.skipped:
        return ""
    listed = "; ".join(f"{tag}: {reason}" for tag, reason in vetting.skipped)
    return f"Skipped {len(vetting.skipped)} newer tag(s): {listed}."
