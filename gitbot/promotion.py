"""Promotion gates: which tags an earlier environment's history lets a later environment take, and why.

Pure: it takes the earlier policy's History (read from its branch in landing order), the gate's image and
soak, and the time now, and says for each tag the earlier environment ran whether it may go on, with the
evidence or what holds it back. It reads no git and no registry; the reconcile shell reads the other branch.

A tag may go on when it landed there at least `soak` ago and has run there that long (it is still running,
or a newer tag replaced it after that), and neither a revert, a rollback nor a quarantine undid it there.
When the earlier environment has a canary for the image, its rollout of that tag must have completed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gitbot.history import BotCommit, History, Quarantine

# Bot actions whose commits put a tag on an image: an update, and a canary's promotion of its tag to GA.
_LANDING_ACTIONS = frozenset({"image-update", "promote"})


@dataclass(frozen=True)
class CanaryGate:
    """The earlier environment's canary of the gated image: its name and the weight of its last step."""

    name: str
    final_step: int = 100


@dataclass(frozen=True)
class TagVerdict:
    """Whether one tag may go on, with the evidence (when it may) or what holds it back."""

    tag: str
    allowed: bool
    reason: str


@dataclass(frozen=True)
class Gate:
    """One image's gate: the earlier environment it names and the verdict on each tag that ran there.

    `unreadable` says why the earlier environment could not be read: then no tag may go on.
    """

    after: str
    environment: str
    verdicts: Mapping[str, TagVerdict] = field(default_factory=dict)
    unreadable: str = ""

    def allows(self, tag: str) -> bool:
        verdict = self.verdicts.get(tag)
        return not self.unreadable and verdict is not None and verdict.allowed

    def why(self, tag: str) -> str:
        """The evidence for `tag`, or what holds it back (one phrase)."""
        if self.unreadable:
            return self.unreadable
        verdict = self.verdicts.get(tag)
        return verdict.reason if verdict is not None else f"not yet in {self.environment}"

    def admit(self, tags: Iterable[str], keep: Collection[str] = ()) -> list[str]:
        """The tags of `tags` the gate lets through, plus those in `keep` (what the targets run already:
        kept so that a target is never moved back below a tag it runs)."""
        return [tag for tag in tags if tag in keep or self.allows(tag)]

    def evidence(self, tag: str) -> str:
        """The sentence a change that brings `tag` carries."""
        return f"Promotion gate {self.after}: {self.why(tag)}."


def unreadable_gate(after: str, environment: str, why: str) -> Gate:
    """The gate of an earlier environment that could not be read: it holds every tag."""
    return Gate(after, environment, unreadable=f"{environment} cannot be read ({why}); holding")


def judge_gate(
    after: str,
    environment: str,
    image: str,
    history: History,
    now: datetime,
    *,
    soak: timedelta = timedelta(0),
    canary: CanaryGate | None = None,
) -> Gate:
    """The gate `after` (`environment/image`) as `history` (the earlier environment's) stands at `now`."""
    position = {commit.sha: index for index, commit in enumerate(history.commits)}  # 0 is the newest
    landings = [c for c in history.commits if c.action in _LANDING_ACTIONS and _tag_set(c, image) is not None]
    quarantined = history.quarantined(image)
    verdicts: dict[str, TagVerdict] = {}
    for landing in landings:  # newest first: the newest landing of a tag decides
        tag = _tag_set(landing, image)
        if tag is None or tag in verdicts:
            continue
        verdicts[tag] = _judge_tag(
            image, tag, landing, landings, position, history, now, environment, soak, canary, quarantined.get(tag)
        )
    for tag, quarantine in quarantined.items():
        verdicts.setdefault(tag, TagVerdict(tag, False, f"rolled back in {environment}: {quarantine.reason}"))
    return Gate(after, environment, verdicts)


def _judge_tag(
    image: str,
    tag: str,
    landing: BotCommit,
    landings: list[BotCommit],
    position: Mapping[str, int],
    history: History,
    now: datetime,
    environment: str,
    soak: timedelta,
    canary: CanaryGate | None,
    quarantine: Quarantine | None,
) -> TagVerdict:
    if quarantine is not None:
        return TagVerdict(tag, False, f"rolled back in {environment}: {quarantine.reason}")
    if landing.reverted_by is not None:
        by = landing.reverted_by
        return TagVerdict(tag, False, f"rolled back in {environment} by {by.sha[:7]} on {_when(by.landed)}")
    # What replaced it: the next change of the image that still stands (a reverted one gave the tag back).
    later = [c for c in landings if position[c.sha] < position[landing.sha] and c.reverted_by is None]
    replaced = later[-1] if later else None
    landed = landing.landed
    until = replaced.landed if replaced is not None else now
    ran = max(until - landed, timedelta(0))
    if replaced is None and ran < soak:
        left = soak - ran
        return TagVerdict(
            tag, False, f"soak left {_span(left)} in {environment} (there since {_when(landed)}, needs {_span(soak)})"
        )
    if replaced is not None and ran < soak:
        return TagVerdict(
            tag,
            False,
            f"ran in {environment} only {_span(ran)} (needs {_span(soak)}) before {_tag_set(replaced, image)} "
            f"replaced it",
        )
    judged = ""
    if canary is not None:
        done = _canary_completed(canary, landing, replaced, position, history)
        if isinstance(done, str):
            return TagVerdict(tag, False, done.format(environment=environment))
        judged = f", canary {canary.name} completed its steps (commit {done.sha[:7]})"
    if replaced is None:
        ran_text = f"has run in {environment} since {_when(landed)} ({_span(ran)})"
    else:
        ran_text = f"ran in {environment} from {_when(landed)} for {_span(ran)} until a newer tag replaced it"
    return TagVerdict(tag, True, f"{tag} {ran_text}, no rollback (commit {landing.sha[:7]}){judged}")


def _canary_completed(
    canary: CanaryGate,
    landing: BotCommit,
    replaced: BotCommit | None,
    position: Mapping[str, int],
    history: History,
) -> BotCommit | str:
    """The standing commit that took the canary's rollout of the landed tag to its last step (or promoted
    it), or what holds the tag back (a `{environment}` template)."""
    start = position[landing.sha]
    end = position[replaced.sha] if replaced is not None else -1
    own = [
        c
        for c in history.commits
        if end < position[c.sha] < start
        and c.reverted_by is None
        and any(change.target == canary.name for change in c.changes)
    ]
    for commit in own:
        if commit.action == "promote":
            return commit
        if commit.action == "canary-step" and any(
            change.target == canary.name and change.new == str(canary.final_step) for change in commit.changes
        ):
            return commit
    steps = [c for c in own if c.action == "canary-step"]
    if not steps:
        return f"canary {canary.name} in {{environment}} has not judged it yet"
    weight = next((ch.new for ch in steps[0].changes if ch.target == canary.name), "?")
    return f"canary {canary.name} in {{environment}} is at {weight}%, its rollout not complete"


def _tag_set(commit: BotCommit, image: str) -> str | None:
    """The tag `commit` gave `image`, or None when it did not touch it."""
    return next((change.new for change in commit.changes if change.target == image and change.new), None)


def _when(at: datetime) -> str:
    """`2026-12-01 10:02Z`: the time in UTC, to the minute."""
    utc = at.astimezone(UTC) if at.tzinfo is not None else at
    return f"{utc:%Y-%m-%d %H:%M}Z"


def _span(delta: timedelta) -> str:
    """`5h`, `1h30m`, `45m`, `20s`: a duration as a person reads it, to the minute past a minute."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    days, rest = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    return "".join(parts)


def held_back(gate: Gate, ranked: Iterable[str], chosen: str | None, limit: int = 3) -> list[tuple[str, str]]:
    """The tags of `ranked` (newest first) newer than `chosen` that the gate holds back, and why."""
    out: list[tuple[str, str]] = []
    for tag in ranked:
        if tag == chosen or len(out) >= limit:
            break
        if not gate.allows(tag):
            out.append((tag, gate.why(tag)))
    return out
