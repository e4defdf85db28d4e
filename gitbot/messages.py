"""Commit messages and pull request text: subjects, bodies, trailers, change tables, evidence.

Pure rendering. The trailers written here are the ones `history.py` reads back, so the two modules agree
on the names in `history`. Nothing here may contain a secret: inputs are tags, paths and measurements.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from gitbot.domain import Change, TagSelection
from gitbot.history import (
    TRAILER_ACTION,
    TRAILER_FROM,
    TRAILER_PLAN,
    TRAILER_POLICY,
    TRAILER_QUARANTINE,
    TRAILER_TARGET,
    TRAILER_TO,
)
from gitbot.logs import mask_credentials

PLAN_MARKER = "<!-- gitbot:plan-id={plan_id} -->"
_CANDIDATES_SHOWN = 10
# A commit message lists this many changes (the trailers say what moved; the commit's diff has every file).
CHANGES_IN_MESSAGE = 50
# A pull request shows this many rows of its change table, and the rest folded in `<details>` while they fit
# in this many characters: GitHub refuses a body longer than 65,536.
CHANGES_IN_TABLE = 50
_FOLDED_TABLE_CHARS = 40_000


@dataclass(frozen=True)
class ImageUpdate:
    """One image policy moving from `old` to `new`, with why and where."""

    name: str
    repository: str
    filter: str
    old: str
    new: str
    selection: TagSelection
    changes: tuple[Change, ...]
    # The promotion gate's evidence that `new` ran in the earlier environment ("" without a gate).
    gate: str = ""
    # What else decided the tag (tags skipped for their age or signature, a digest pinned again).
    notes: str = ""


def plan_id(policy: str, name: str, action: str, changes: Sequence[Change], context: Sequence[str] = ()) -> str:
    """A stable id of what a plan changes: the same repository state gives the same id.

    `context` is what else makes the change a different one although the same values move (the canary tag
    a weight step sends traffic to): a pull request a person closed for one tag is not the refusal of another.
    """
    parts: list[object] = [policy, name, action, sorted((c.file, c.document, c.pointer, c.old, c.new) for c in changes)]
    if context:
        parts.append(list(context))
    canonical = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def subject_for_images(policy: str, updates: Sequence[ImageUpdate]) -> str:
    if len(updates) == 1:
        update = updates[0]
        return f"gitbot({policy}): {update.name} {update.old} -> {update.new}"
    listed = ", ".join(f"{u.name} {u.new}" for u in updates)
    return f"gitbot({policy}): update {len(updates)} images ({listed})"


def image_trailers(policy: str, updates: Sequence[ImageUpdate], plan: str) -> tuple[tuple[str, str], ...]:
    trailers: list[tuple[str, str]] = [(TRAILER_POLICY, policy), (TRAILER_ACTION, "image-update")]
    for update in updates:
        trailers += [(TRAILER_TARGET, update.name), (TRAILER_FROM, update.old), (TRAILER_TO, update.new)]
    trailers.append((TRAILER_PLAN, plan))
    return tuple(trailers)


def why_this_tag(update: ImageUpdate) -> str:
    """One paragraph saying which tags matched and why `new` was chosen."""
    shown = list(update.selection.candidates[:_CANDIDATES_SHOWN])
    more = len(update.selection.candidates) - len(shown)
    text = (
        f"{update.new} is the newest tag of {update.repository} that matches the filter `{update.filter}`; "
        f"matching tags, newest first: {', '.join(shown)}{f' (and {more} more)' if more > 0 else ''}."
    )
    if update.selection.quarantined:
        text += f" Skipped as quarantined (a revert of an earlier update): {', '.join(update.selection.quarantined)}."
    if update.selection.ignored:
        text += f" Ignored {len(update.selection.ignored)} tags that are not valid OCI tags."
    if update.gate:
        text += f" {update.gate}"
    if update.notes:
        text += f" {update.notes}"
    return text


def _count(number: int, what: str) -> str:
    return f"{number:,} {what}" + ("" if number == 1 else "s")


def image_commit_body(policy: str, updates: Sequence[ImageUpdate]) -> str:
    """Why each tag, the changes (at most `CHANGES_IN_MESSAGE` listed, with how many more), how to roll back."""
    lines: list[str] = []
    room = CHANGES_IN_MESSAGE
    for update in updates:
        lines.append(why_this_tag(update))
        listed = update.changes[: max(room, 0)]
        room -= len(listed)
        for change in listed:
            lines.append(f"  {change.file} {change.resource} {change.pointer}: {change.old} -> {change.new}")
        more = len(update.changes) - len(listed)
        if more:
            lines.append(
                f"  ... and {_count(more, 'more change')} of {update.name} "
                f"({_count(len(update.changes), 'change')} in all; the commit's diff has every file)"
            )
        lines.append("")
    # `gitbot rollback` takes one name and reverts the whole commit that changed it, every image in it.
    every = f" (it reverts all {len(updates)} images of this commit)" if len(updates) > 1 else ""
    lines.append(
        f"Roll back with `git revert` of this commit or `gitbot rollback {updates[0].name} --policy {policy}`"
        f"{every}; a reverted tag is quarantined and not applied again."
    )
    return "\n".join(lines)


def render_message(subject: str, body: str, trailers: Sequence[tuple[str, str]]) -> str:
    """The full commit message: subject, blank line, body, blank line, trailers (git trailer format)."""
    trailer_block = "\n".join(f"{key}: {' '.join(value.split())}" for key, value in trailers)
    parts = [subject.strip(), body.strip(), trailer_block]
    # The evidence may quote a server's error text: a credential in it never reaches git history.
    return mask_credentials("\n\n".join(part for part in parts if part)) + "\n"


def rollback_trailers(
    policy: str, target: str, old: str, new: str, plan: str, quarantine: Sequence[tuple[str, str]] = ()
) -> tuple[tuple[str, str], ...]:
    trailers: list[tuple[str, str]] = [
        (TRAILER_POLICY, policy),
        (TRAILER_ACTION, "rollback"),
        (TRAILER_TARGET, target),
        (TRAILER_FROM, old),
        (TRAILER_TO, new),
    ]
    trailers += [(TRAILER_QUARANTINE, f"{name}={tag}") for name, tag in quarantine]
    trailers.append((TRAILER_PLAN, plan))
    return tuple(trailers)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_TABLE_HEAD = ("| file | resource | field | old | new |", "| --- | --- | --- | --- | --- |")


def _row(c: Change) -> str:
    return f"| `{_cell(c.file)}` | {_cell(c.resource)} | `{_cell(c.pointer)}` | `{_cell(c.old)}` | `{_cell(c.new)}` |"


def change_table(changes: Sequence[Change]) -> str:
    """The changes as a table: `CHANGES_IN_TABLE` rows shown, the rest folded in `<details>` (bounded)."""
    rows = [*_TABLE_HEAD, *(_row(c) for c in changes[:CHANGES_IN_TABLE])]
    rest = changes[CHANGES_IN_TABLE:]
    if not rest:
        return "\n".join(rows)
    folded: list[str] = []
    size = 0
    for change in rest:
        row = _row(change)
        size += len(row) + 1
        if size > _FOLDED_TABLE_CHARS:
            break
        folded.append(row)
    unlisted = len(rest) - len(folded)
    summary = f"{_count(len(rest), 'more change')} ({_count(len(changes), 'change')} in all)"
    parts = ["\n".join(rows), f"<details><summary>{summary}</summary>", "\n".join([*_TABLE_HEAD, *folded])]
    if unlisted:
        parts.append(f"... and {_count(unlisted, 'more change')} not listed here; the diff has every file.")
    parts.append("</details>")
    # Blank lines around the table inside `<details>`: GitHub renders Markdown there only after one.
    return "\n\n".join(parts)


def pull_request_body(
    *, summary: str, changes: Sequence[Change], why: str, evidence: str, rollback: str, plan: str
) -> str:
    """The PR body: summary, change table, why, evidence, how to roll back and the hidden plan marker."""
    sections = [summary.strip(), "### Changes", change_table(changes)]
    if why.strip():
        sections += ["### Why", why.strip()]
    if evidence.strip():
        sections += ["### Evidence", evidence.strip()]
    sections += ["### Rolling back", rollback.strip()]
    # The evidence may quote a server's error text: a credential in it is never published in a pull request.
    return mask_credentials("\n\n".join(sections)) + "\n\n" + PLAN_MARKER.format(plan_id=plan) + "\n"


def plan_id_in(body: str) -> str | None:
    """The plan id hidden in a PR body by `pull_request_body`, if any."""
    prefix = "<!-- gitbot:plan-id="
    start = body.find(prefix)
    if start < 0:
        return None
    end = body.find(" -->", start)
    return body[start + len(prefix) : end] if end > 0 else None
