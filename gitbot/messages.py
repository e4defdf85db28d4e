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
    TRAILER_RESTART,
    TRAILER_TARGET,
    TRAILER_TO,
    TRAILER_UNDOES,
)
from gitbot.logs import mask_credentials

# The plan id hidden in a pull request's body (`<!-- gitbot:plan-id=ID -->`): a restarted bot finds its pull
# request by it. A pull request the bot closes as superseded gets the second form first, so that its closing
# is not read as a person's refusal of that plan.
PLAN_MARKER = "<!-- gitbot:plan-id="
SUPERSEDED_MARKER = "<!-- gitbot:superseded-plan-id="
_MARKER_END = " -->"
# A plan's trailers, in the order the commit shows them.
Trailers = tuple[tuple[str, str], ...]
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


def subject(policy: str, what: str) -> str:
    """A bot commit's subject, which is also its pull request's title: `gitbot(<policy>): <what>`."""
    return f"gitbot({policy}): {what}"


def plan_trailers(
    policy: str,
    action: str,
    moves: Sequence[tuple[str, str, str]],
    plan: str | None,
    extra: Sequence[tuple[str, str]] = (),
) -> Trailers:
    """The trailers of a bot commit, in the one order `history` reads: policy, action, a target/from/to triple
    per move, then `extra` (quarantined tags, restarted canaries), and the plan id last (a marker has none)."""
    trailers: list[tuple[str, str]] = [(TRAILER_POLICY, policy), (TRAILER_ACTION, action)]
    for target, old, new in moves:
        trailers += [(TRAILER_TARGET, target), (TRAILER_FROM, old), (TRAILER_TO, new)]
    trailers += extra
    if plan is not None:
        trailers.append((TRAILER_PLAN, plan))
    return tuple(trailers)


def subject_for_images(policy: str, updates: Sequence[ImageUpdate]) -> str:
    if len(updates) == 1:
        update = updates[0]
        return subject(policy, f"{update.name} {update.old} -> {update.new}")
    listed = ", ".join(f"{u.name} {u.new}" for u in updates)
    return subject(policy, f"update {len(updates)} images ({listed})")


def image_trailers(policy: str, updates: Sequence[ImageUpdate], plan: str) -> Trailers:
    return plan_trailers(policy, "image-update", [(u.name, u.old, u.new) for u in updates], plan)


def why_this_tag(update: ImageUpdate) -> str:
    """One paragraph saying which tags matched and why `new` was chosen."""
    shown = list(update.selection.candidates[:_CANDIDATES_SHOWN])
    more = len(update.selection.candidates) - len(shown)
    # A pinned tag is `tag@digest`: the tag is what was chosen, its digest is the pin.
    text = (
        f"{update.new.split('@')[0]} is the newest tag of {update.repository} that matches the filter "
        f"`{update.filter}`; "
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
) -> Trailers:
    quarantined = [(TRAILER_QUARANTINE, f"{name}={tag}") for name, tag in quarantine]
    return plan_trailers(policy, "rollback", [(target, old, new)], plan, quarantined)


@dataclass(frozen=True)
class Message:
    """A plan's message: subject, body, trailers and the plan id (also hidden in its pull request)."""

    subject: str
    body: str
    trailers: Trailers
    plan_id: str


def hand_rollback_message(
    policy: str, name: str, victim: str, old: str, new: str, quarantine: Sequence[tuple[str, str]]
) -> Message:
    """`gitbot rollback <name>`'s revert of commit `victim`, which moved `name` from `old` to `new`.

    The plan id is the same for the same change reverted, so a command run again finds its pull request.
    """
    pid = plan_id(policy, name, "rollback", [])[:8] + victim[:8]
    body = (
        reverts_paragraph([victim])
        + f"\nRolled back on request (gitbot rollback {name} --policy {policy})."
        + (f" Quarantined: {', '.join(f'{t}={tag}' for t, tag in quarantine)}." if quarantine else "")
    )
    return Message(
        subject(policy, f"roll back {name} {new} -> {old}"),
        body,
        rollback_trailers(policy, name, new, old, pid, quarantine),
        pid,
    )


def step_subject(policy: str, canary: str, old: int, new: int) -> str:
    return subject(policy, f"{canary} canary {old}% -> {new}%")


def step_trailers(policy: str, canary: str, old: int, new: int, plan: str) -> Trailers:
    return plan_trailers(policy, "canary-step", [(canary, str(old), str(new))], plan)


def hand_step_body(policy: str, canary: str, evidence: str) -> str:
    """The body of a step `gitbot promote` made: it says so first (see `BY_HAND`), then the evidence."""
    return f"{BY_HAND}{canary} --policy {policy}).\n\n{evidence}"


def canary_rollback_subject(policy: str, canary: str, why: str) -> str:
    return subject(policy, f"roll back {canary} canary ({why})")


def promotion_subject(policy: str, canary: str, tag: str, ga: str) -> str:
    return subject(policy, f"promote {canary} canary {tag} to {ga}")


def promotion_trailers(policy: str, canary: str, weight: int, ga: str, old: str, new: str, plan: str) -> Trailers:
    """A promotion's trailers: the canary's weights back to 0%, and GA's image taking the canary's tag."""
    return plan_trailers(policy, "promote", [(canary, str(weight), "0"), (ga, old, new)], plan)


def marker_message(policy: str, name: str, action: str, why: str) -> str:
    """The message of a pause/resume marker commit: it changes no file and has no plan id."""
    verb = "pause" if action == "pause" else "resume"
    return render_message(
        subject(policy, f"{verb} {name} canary"),
        marker_body(policy, name, action, why),
        plan_trailers(policy, action, (), None, [(TRAILER_TARGET, name)]),
    )


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
    *,
    summary: str,
    changes: Sequence[Change],
    why: str,
    evidence: str,
    rollback: str,
    plan: str,
    undoes: str = "",
    rollback_heading: str = "Rolling back",
) -> str:
    """The PR body: summary, change table, what it undoes, why, evidence, how to roll back, the plan marker.

    A change that only reverts commits (its files are what the revert leaves) has no change table: `undoes`
    says what it undoes.
    """
    sections = [summary.strip()]
    if changes or not undoes.strip():
        sections += ["### Changes", change_table(changes)]
    if undoes.strip():
        sections += ["### Undoes", undoes.strip()]
    if why.strip():
        sections += ["### Why", why.strip()]
    if evidence.strip():
        sections += ["### Evidence", evidence.strip()]
    sections += [f"### {rollback_heading}", rollback.strip()]
    # The evidence may quote a server's error text: a credential in it is never published in a pull request.
    return mask_credentials("\n\n".join(sections)) + "\n\n" + plan_marker(plan) + "\n"


def plan_marker(plan: str) -> str:
    """The hidden plan id of a pull request's body."""
    return f"{PLAN_MARKER}{plan}{_MARKER_END}"


def plan_id_in(body: str) -> str | None:
    """The plan id hidden in a PR body by `pull_request_body`, if any."""
    start = body.find(PLAN_MARKER)
    if start < 0:
        return None
    end = body.find(_MARKER_END, start)
    return body[start + len(PLAN_MARKER) : end] if end > 0 else None


def marked_by_bot(body: str) -> bool:
    """Whether a pull request's body holds a plan id, live or superseded (the bot opened it)."""
    return PLAN_MARKER in body or SUPERSEDED_MARKER in body


def superseded_body(body: str) -> str:
    """`body` with its plan id marked superseded: the pull request no longer proposes a live plan."""
    return body.replace(PLAN_MARKER, SUPERSEDED_MARKER)


# Texts that say what each kind of change does and how it is undone. The kind comes from the plan itself
# (its action, trailers and values), so that every caller words the same change the same way.
KIND_IMAGE = "image update"
KIND_GROUP = "group image update"
KIND_REPIN = "digest pinned again"
KIND_RESTART = "image update restarting a canary"
KIND_STEP = "canary step"
KIND_HAND_STEP = "canary step by hand"
KIND_ROLLBACK = "canary rollback"
KIND_HAND_ROLLBACK = "rollback by hand"
KIND_PROMOTE = "promotion"
# The first words of a step's body when `gitbot promote` made it (`manual.hand_step` recognises them).
BY_HAND = "Stepped by hand (gitbot promote "


def plan_kind(action: str, trailers: Sequence[tuple[str, str]], body: str, changed_files: bool) -> str:
    """Which kind of change a plan is, from its action, trailers, body and whether it edits files itself."""
    targets = [value for key, value in trailers if key == TRAILER_TARGET]
    if action == "canary-step":
        return KIND_HAND_STEP if body.startswith(BY_HAND) else KIND_STEP
    if action == "rollback":
        return KIND_ROLLBACK if changed_files else KIND_HAND_ROLLBACK
    if action == "promote":
        return KIND_PROMOTE
    if any(key == TRAILER_RESTART for key, _ in trailers):
        return KIND_RESTART
    if len(targets) > 1:
        return KIND_GROUP
    olds = [value for key, value in trailers if key == TRAILER_FROM]
    news = [value for key, value in trailers if key == TRAILER_TO]
    if olds and news and "@" in news[0] and olds[0].split("@")[0] == news[0].split("@")[0]:
        return KIND_REPIN
    return KIND_IMAGE


def reverts_paragraph(shas: Sequence[str]) -> str:
    """`git revert`'s own words for the commits a revert undoes, one line each (history reads them back)."""
    return "".join(f"This reverts commit {sha}.\n" for sha in shas)


def undoes_trailers(trailers: Sequence[tuple[str, str]], shas: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`trailers` with one `Gitbot-Undoes` per commit in `shas`, before the plan id (which stays last)."""
    kept = [(key, value) for key, value in trailers if key != TRAILER_PLAN]
    plan = [(key, value) for key, value in trailers if key == TRAILER_PLAN]
    return (*kept, *((TRAILER_UNDOES, sha) for sha in shas), *plan)


def commits_named(shas: Sequence[str]) -> str:
    """Short shas as words: `a1b2c3d`, `a1b2c3d and e4f5a6b`, `a1b2c3d, e4f5a6b and c7d8e9f`."""
    short = [f"{sha[:7]}" for sha in shas]
    return short[0] if len(short) == 1 else f"{', '.join(short[:-1])} and {short[-1]}"


def plain_rollback_note(shas: Sequence[str], weight: str) -> str:
    """Why a canary's rollback is a commit of its own, not a revert, and what it undoes."""
    steps = f"step {commits_named(shas)}" if len(shas) == 1 else f"{len(shas)} steps ({commits_named(shas)})"
    return (
        f"A revert of the canary's {steps} would conflict with later changes to the branch, so this commit sets "
        f"the canary weight from {weight}% to 0% (GA 100%) itself, without `git revert`. The Gitbot-Undoes "
        f"trailers name the {'step' if len(shas) == 1 else 'steps'} it undoes."
    )


def marker_body(policy: str, name: str, action: str, why: str) -> str:
    """The body of a pause or resume marker: why, and that it changes no file."""
    if action == "pause":
        effect = (
            f"This commit changes no file: gitbot reads it from history and holds canary {name} at its weight "
            f"until `gitbot resume {name} --policy {policy}`."
        )
    else:
        effect = (
            f"This commit changes no file: gitbot reads it from history and judges canary {name} again from the "
            "next cycle."
        )
    return f"{why.strip()}\n\n{effect}" if why.strip() else effect


def trailer_moves(trailers: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The (target, from, to) triples of a plan's trailers, in order: the `moves` of `plan_trailers`."""
    targets = [value for key, value in trailers if key == TRAILER_TARGET]
    olds = [value for key, value in trailers if key == TRAILER_FROM]
    news = [value for key, value in trailers if key == TRAILER_TO]
    return [(t, olds[i] if i < len(olds) else "", news[i] if i < len(news) else "") for i, t in enumerate(targets)]


def rolling_back_text(policy: str, kind: str, trailers: Sequence[tuple[str, str]]) -> str:
    """What merging, closing and undoing a pull request of this kind does, in its own words."""
    pairs = trailer_moves(trailers)
    name, old, new = pairs[0] if pairs else ("", "", "")
    rollback = f"`gitbot rollback {name} --policy {policy}`"
    revert = "revert the merge (GitHub's Revert button or `git revert`)"
    quarantine = [value.split("=", 1) for key, value in trailers if key == TRAILER_QUARANTINE and "=" in value]
    quarantined = ", ".join(f"{tag} of {image}" for image, tag in quarantine)
    restarted = [value for key, value in trailers if key == TRAILER_RESTART]
    if kind in (KIND_IMAGE, KIND_GROUP, KIND_RESTART):
        names = ", ".join(target for target, _, _ in pairs)
        every = f" (it reverts the whole change: {names})" if kind == KIND_GROUP else ""
        text = (
            "Close this pull request to skip this change for now: it is not proposed again until the tags it "
            f"would apply change. After merging, {revert} or run {rollback}{every}: the reverted "
            f"{'tags are' if kind == KIND_GROUP else 'tag is'} quarantined and not proposed again."
        )
        if restarted:
            text += f" A revert also puts back the weights this change set to 0% (canary {', '.join(restarted)})."
        return text
    if kind == KIND_REPIN:
        return (
            f"Close this pull request to keep {name} at {old} for now: it is not proposed again until the tag's "
            f"digest changes. After merging, {revert} or run {rollback}: the reverted digest is quarantined and "
            "not pinned again."
        )
    if kind in (KIND_STEP, KIND_HAND_STEP):
        return (
            f"Close this pull request to leave canary {name} at {old}% for now: this step is not proposed again "
            f"for the same canary image. After merging, {rollback} reverts this step (the canary goes back to "
            f"{old}%); a revert by hand (GitHub's Revert button or `git revert`) also pauses the canary until "
            f"`gitbot resume {name} --policy {policy}`."
        )
    if kind == KIND_ROLLBACK:
        held = f" and quarantines canary tag {quarantined}: a newer tag starts its rollout again" if quarantine else ""
        return (
            f"Merging this ends canary {name} at 0% (GA 100%){held}. Close this pull request to leave the canary at "
            f"{old}%: this rollback is not proposed again for the same canary image and weights."
        )
    if kind == KIND_HAND_ROLLBACK:
        held = f" Merging it quarantines {quarantined}: not proposed again." if quarantine else ""
        return (
            f"Merging this undoes the newest change to {name}, {new} -> {old}, as its `git revert`.{held} "
            "Close this pull request to keep that change."
        )
    if kind == KIND_PROMOTE:
        ga = pairs[1] if len(pairs) > 1 else ("GA", "", "")
        return (
            f"Merging this gives {ga[0]} the canary's tag {ga[2]} and ends canary {name} at 0% (GA 100%). Close this "
            f"pull request to leave the canary at {old}% for now. After merging, {rollback} reverts the promotion."
        )
    raise ValueError(f"no text for a change of kind {kind!r}")


def undone_table(shas: Sequence[str], trailers: Sequence[tuple[str, str]]) -> str:
    """For a change that undoes commits: the commits, and what each named target goes back to."""
    rows = [f"- {sha}" for sha in shas]
    rows += [f"- {_cell(target)}: `{_cell(old)}` -> `{_cell(new)}`" for target, old, new in trailer_moves(trailers)]
    return "\n".join(rows)


def without_reverts_paragraph(text: str) -> str:
    """`text` without a first paragraph of `This reverts commit` lines (a pull request lists them itself)."""
    first, _, rest = text.partition("\n\n")
    lines = first.strip().splitlines()
    return rest if lines and all(line.startswith("This reverts commit ") for line in lines) else text


def pull_request_summary(policy: str, kind: str) -> str:
    article = "an" if kind[0] in "aeiou" else "a"
    return f"gitbot proposes {article} {kind} for policy **{policy}**."
