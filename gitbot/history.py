"""What the bot did, read back from git: its trailers, the reverts of its commits, and what follows.

Pure: it takes commits (newest first, as `git log` gives them) and derives which bot changes stand, which a
person (or the bot's own rollback) reverted, the tags quarantined per target because of such reverts, and
when each canary last stepped. Git is the only state, so a restarted bot reads the same conclusions.

Time and order come from the branch's first-parent line, in the order changes landed there
(`landing_order`), never from commit dates: a merged pull request's commits can be older than the bot's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from gitbot.domain import CommitInfo

# Every trailer the bot writes starts with this: `messages.plan_trailers` writes them in one order, this
# module reads them back.
TRAILER_PREFIX = "Gitbot-"
TRAILER_POLICY = "Gitbot-Policy"
TRAILER_ACTION = "Gitbot-Action"
TRAILER_TARGET = "Gitbot-Target"
TRAILER_FROM = "Gitbot-From"
TRAILER_TO = "Gitbot-To"
TRAILER_PLAN = "Gitbot-Plan-Id"
TRAILER_QUARANTINE = "Gitbot-Quarantine"
# A bot commit that undoes earlier commits without being their `git revert` (a rollback whose revert would
# conflict sets the weights itself): one trailer per commit it undoes, read as that commit's revert.
TRAILER_UNDOES = "Gitbot-Undoes"
# On an image update that also moved a canary's weights back to 0% (`onNewImage: restart`): the canary's name.
TRAILER_RESTART = "Gitbot-Restart"
# Actions whose commits change manifests and that `gitbot rollback` undoes with `git revert`.
REVERTIBLE_ACTIONS = frozenset({"image-update", "canary-step", "promote"})

_REVERTS_SHA = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
_SHA = re.compile(r"[0-9a-f]{7,40}")
# A squash merge of the revert's own pull request appends ` (#N)` to its subject.
_REVERT_SUBJECT = re.compile(r'^Revert "(.*)"(?: \(#\d+\))?$')


@dataclass(frozen=True)
class TargetChange:
    """One `Gitbot-Target`/`From`/`To` triple of a bot commit."""

    target: str
    old: str
    new: str


@dataclass(frozen=True)
class BotCommit:
    """A commit the bot made, with what it changed and what became of it."""

    commit: CommitInfo
    policy: str
    action: str
    changes: tuple[TargetChange, ...]
    plan_id: str | None
    quarantine: tuple[tuple[str, str], ...] = ()
    reverted_by: CommitInfo | None = None
    landed_at: datetime | None = None

    @property
    def sha(self) -> str:
        return self.commit.sha

    @property
    def landed(self) -> datetime:
        """When the change reached the branch: the merge that brought it in, else its own commit time."""
        return self.landed_at or self.commit.committed_at


@dataclass(frozen=True)
class Quarantine:
    """A tag that must not be applied again to `target`, and why."""

    target: str
    tag: str
    reason: str
    since: datetime


@dataclass(frozen=True)
class History:
    """The bot's commits for one policy (newest first) and the conclusions drawn from them."""

    policy: str
    commits: tuple[BotCommit, ...] = ()
    quarantines: tuple[Quarantine, ...] = field(default=())

    def quarantined(self, target: str) -> dict[str, Quarantine]:
        """Quarantined tags for image policy `target`, by tag."""
        return {q.tag: q for q in self.quarantines if q.target == target}

    def standing(self, target: str, action: str | None = None) -> list[BotCommit]:
        """The bot's commits that touched `target` and were not reverted, newest first."""
        return [
            c
            for c in self.commits
            if c.reverted_by is None
            and (action is None or c.action == action)
            and any(change.target == target for change in c.changes)
        ]

    def revertible(self, target: str) -> list[BotCommit]:
        """The standing commits a rollback of `target` may revert, newest first.

        A rollback is not itself rolled back (that would re-apply the tag it quarantined), and a pause or
        resume marker changes no file: reverting one would be an empty revert, not a rollback.
        """
        return [c for c in self.standing(target) if c.action in REVERTIBLE_ACTIONS]

    def undone(self, target: str) -> CommitInfo | None:
        """The commit that already undid the newest change to `target`, when no newer change stands.

        That is a standing rollback (the bot's, by hand or by a cycle) newer than every standing change, or
        the revert of the newest change (whoever made it). A rollback run again after it landed finds it here
        instead of reverting the next older change. Pause and resume markers change nothing and are passed over.
        """
        for commit in self.commits:
            if not any(change.target == target for change in commit.changes):
                continue
            if commit.action in REVERTIBLE_ACTIONS:
                return commit.reverted_by
            if commit.action == "rollback" and commit.reverted_by is None:
                return commit.commit
        return None


def parse_bot_commit(commit: CommitInfo) -> BotCommit | None:
    """The bot's view of `commit`, or None when it carries no gitbot trailers."""
    policy = commit.trailer(TRAILER_POLICY)
    action = commit.trailer(TRAILER_ACTION)
    if policy is None or action is None:
        return None
    targets = [v for k, v in commit.trailers if k.lower() == TRAILER_TARGET.lower()]
    olds = [v for k, v in commit.trailers if k.lower() == TRAILER_FROM.lower()]
    news = [v for k, v in commit.trailers if k.lower() == TRAILER_TO.lower()]
    changes = tuple(
        TargetChange(target, olds[i] if i < len(olds) else "", news[i] if i < len(news) else "")
        for i, target in enumerate(targets)
    )
    quarantine = tuple(
        (name, tag)
        for k, v in commit.trailers
        if k.lower() == TRAILER_QUARANTINE.lower() and "=" in v
        for name, tag in [v.split("=", 1)]
    )
    return BotCommit(commit, policy, action, changes, commit.trailer(TRAILER_PLAN), quarantine)


def reverted_shas(commit: CommitInfo) -> list[str]:
    """The (possibly abbreviated) shas a commit says it reverts: from `git revert`'s message, or its
    `Gitbot-Undoes` trailers when the bot undid them with a commit of its own."""
    undoes = [value.strip() for key, value in commit.trailers if key.lower() == TRAILER_UNDOES.lower()]
    return _REVERTS_SHA.findall(commit.body) + [sha for sha in undoes if _SHA.fullmatch(sha)]


def landing_order(log: Sequence[CommitInfo]) -> list[CommitInfo]:
    """The commits of `log` in the order they landed on the branch, newest first, each with its `landed_at`.

    The branch is the first-parent line from its tip (the first commit of `log` that no other commit of it
    names as a parent: HEAD, for `git log`). A commit on that line landed at its position there: a
    fast-forwarded or rebased commit, a squash merge, a merge commit. A commit reachable only through a
    merge's other parents landed with that merge: it takes the merge's place (right after it, children
    before parents) and the merge's committer time, whatever its own date. Git records no time of a
    fast-forward, so a commit on the line landed at its own committer date, even when that is older than the
    commit before it (a rebase that kept the dates): its place still orders it, and one skewed clock moves
    the time of no other commit. Commits of `log` the tip does not reach (a log cut short) come last, with
    no landing time.
    """
    by_sha = {c.sha: c for c in log}
    named = {parent for c in log for parent in c.parents}
    current = next((c for c in log if c.sha not in named), None)
    chain: list[CommitInfo] = []
    placed: set[str] = set()
    while current is not None and current.sha not in placed:
        chain.append(current)
        placed.add(current.sha)
        current = by_sha.get(current.parents[0]) if current.parents else None
    # Oldest merge first: what an older merge brought in is placed before a newer merge looks.
    brought = {commit.sha: _brought_in(commit, by_sha, placed) for commit in reversed(chain)}
    ordered: list[CommitInfo] = []
    for commit in chain:
        at = commit.committed_at
        ordered += [replace(c, landed_at=at) for c in (commit, *brought[commit.sha])]
    ordered += [replace(c, landed_at=None) for c in log if c.sha not in placed]
    return ordered


def _brought_in(merge: CommitInfo, by_sha: dict[str, CommitInfo], placed: set[str]) -> list[CommitInfo]:
    """The commits `merge` brought in that are not yet `placed` (now placed), children before parents."""
    # Depth-first from the merge's other parents, each commit emitted after its parents: reversed, every
    # commit comes before the ones it was built on, as in `git log`.
    emitted: list[CommitInfo] = []
    stack = [(sha, False) for sha in reversed(merge.parents[1:])]
    while stack:
        sha, done = stack.pop()
        if done:
            emitted.append(by_sha[sha])
        elif sha not in placed and sha in by_sha:
            placed.add(sha)
            stack.append((sha, True))
            stack.extend((parent, False) for parent in reversed(by_sha[sha].parents))
    return emitted[::-1]


def read_history(log: Sequence[CommitInfo], policy: str) -> History:
    """Derive the History of `policy` from `log` (newest first), read in the order its commits landed."""
    log = landing_order(log)
    oldest_first = list(reversed(log))
    by_sha = {c.sha: c for c in oldest_first}
    reverted: dict[str, CommitInfo] = {}
    for commit in oldest_first:
        for victim in _victims(commit, oldest_first, by_sha):
            if victim in reverted:
                continue
            # Reverting a revert restores what the first revert undid.
            undone = [sha for sha, by in reverted.items() if by.sha == victim]
            if undone:
                for sha in undone:
                    del reverted[sha]
            else:
                reverted[victim] = commit
    bot: list[BotCommit] = []
    quarantines: list[Quarantine] = []
    for commit in oldest_first:
        parsed = parse_bot_commit(commit)
        if parsed is None or parsed.policy != policy:
            continue
        by = reverted.get(commit.sha)
        parsed = replace(parsed, reverted_by=by, landed_at=commit.landed_at)
        bot.append(parsed)
        if by is not None and parsed.action == "image-update":
            for change in parsed.changes:
                reason = f"reverted by {by.sha[:7]} ({by.author.name}) on {by.landed:%Y-%m-%d %H:%M}: {by.subject}"
                quarantines.append(Quarantine(change.target, change.new, reason, by.landed))
        if parsed.reverted_by is None:
            for target, tag in parsed.quarantine:
                reason = f"rolled back by {commit.sha[:7]} on {commit.landed:%Y-%m-%d %H:%M}: {commit.subject}"
                quarantines.append(Quarantine(target, tag, reason, commit.landed))
    return History(policy, tuple(reversed(bot)), tuple(quarantines))


def _victims(commit: CommitInfo, oldest_first: Sequence[CommitInfo], by_sha: dict[str, CommitInfo]) -> list[str]:
    victims: list[str] = []
    for short in reverted_shas(commit):
        full = short if short in by_sha else next((sha for sha in by_sha if sha.startswith(short)), None)
        if full:
            victims.append(full)
    if victims:
        # Reverting a merge (`git revert -m 1`, GitHub's Revert button on a merged pull request) undoes every
        # commit the merge brought in, the bot's among them.
        return [sha for victim in victims for sha in [victim, *_merged_in(by_sha[victim], by_sha)]]
    # GitHub's revert button writes `Revert "<subject>"` without a sha when the PR was squash-merged:
    # match the newest earlier commit with that subject (a merge, with what it brought in).
    match = _REVERT_SUBJECT.match(commit.subject)
    if match:
        index = oldest_first.index(commit)
        for earlier in reversed(oldest_first[:index]):
            if earlier.subject == match.group(1):
                return [earlier.sha, *_merged_in(earlier, by_sha)]
    return []


def _merged_in(merge: CommitInfo, by_sha: dict[str, CommitInfo]) -> list[str]:
    """The commits of the log that `merge` brought in: reachable from its other parents, not its first."""
    if len(merge.parents) < 2:
        return []
    mainline = _reachable([merge.parents[0]], by_sha, set())
    return sorted(_reachable(list(merge.parents[1:]), by_sha, mainline))


def _reachable(starts: list[str], by_sha: dict[str, CommitInfo], stop: set[str]) -> set[str]:
    found: set[str] = set()
    stack = list(starts)
    while stack:
        sha = stack.pop()
        if sha in found or sha in stop or sha not in by_sha:
            continue
        found.add(sha)
        stack.extend(by_sha[sha].parents)
    return found
