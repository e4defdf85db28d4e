"""History in the order changes landed on the branch (its first-parent line), never in commit-date order.

Each log below is given as `git log` lists it by commit date, newest first; the bot must read it in landing
order whatever order it comes in: merge commits, squash merges, rebases and fast-forwards alike.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.config import CanarySettings, load_policy
from gitbot.domain import Author, CommitInfo
from gitbot.history import landing_order, read_history
from gitbot.rollout import canary_history

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BOT = Author("gitbot", "gitbot@example.org")
ALICE = Author("Alice", "alice@example.org")
POLICY = "production"


@pytest.fixture(scope="module")
def canary() -> CanarySettings:
    return load_policy(REPO / "policies" / "production.yaml").spec.canaries[0]


class Branch:
    """Builds a commit graph: each commit gets a fresh sha, the parents named and the minute given."""

    def __init__(self) -> None:
        self.commits: list[CommitInfo] = []

    def add(
        self,
        subject: str,
        minute: float,
        parents: tuple[CommitInfo, ...] = (),
        *,
        body: str = "",
        trailers: tuple[tuple[str, str], ...] = (),
        author: Author = BOT,
    ) -> CommitInfo:
        commit = CommitInfo(
            sha=f"{len(self.commits) + 1:040x}",
            parents=tuple(p.sha for p in parents),
            author=author,
            committed_at=T0 + timedelta(minutes=minute),
            subject=subject,
            body=body,
            trailers=trailers,
        )
        self.commits.append(commit)
        return commit

    def by_date(self) -> list[CommitInfo]:
        """The commits as `git log` lists them by default: by commit date, newest first."""
        return sorted(self.commits, key=lambda c: c.committed_at, reverse=True)

    def step(self, minute: float, parent: CommitInfo, old: int, new: int) -> CommitInfo:
        return self.add(
            f"gitbot({POLICY}): podinfo canary {old}% -> {new}%",
            minute,
            (parent,),
            trailers=bot_trailers("canary-step", "podinfo", str(old), str(new)),
        )

    def image(self, minute: float, parent: CommitInfo, old: str = "0.2.1", new: str = "0.2.2") -> CommitInfo:
        return self.add(
            f"gitbot({POLICY}): podinfo-canary {old} -> {new}",
            minute,
            (parent,),
            trailers=bot_trailers("image-update", "podinfo-canary", old, new),
        )

    def marker(self, minute: float, parent: CommitInfo, action: str) -> CommitInfo:
        return self.add(
            f"gitbot({POLICY}): {action} podinfo canary",
            minute,
            (parent,),
            trailers=(("Gitbot-Policy", POLICY), ("Gitbot-Action", action), ("Gitbot-Target", "podinfo")),
        )


def bot_trailers(action: str, target: str, old: str, new: str) -> tuple[tuple[str, str], ...]:
    return (
        ("Gitbot-Policy", POLICY),
        ("Gitbot-Action", action),
        ("Gitbot-Target", target),
        ("Gitbot-From", old),
        ("Gitbot-To", new),
        ("Gitbot-Plan-Id", f"{action}-{new}"),
    )


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def shas(commits: list[CommitInfo]) -> list[str]:
    return [c.sha for c in commits]


def test_a_merged_canary_image_older_than_the_last_step_restarts_the_dwell(canary: CanarySettings) -> None:
    # The canary-image pull request was opened at minute 1; the canary stepped to 10 % at minute 2; the
    # image pull request is merged with a merge commit at minute 15, while a 10 -> 60 % step waits.
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    image = g.image(1, seed)
    step10 = g.step(2, seed, 0, 10)
    merge = g.add("Merge pull request #2 from acme/gitbot/production/podinfo-canary", 15, (step10, image))
    log = g.by_date()
    assert shas(log) == shas([merge, step10, image, seed])

    ordered = landing_order(log)
    assert shas(ordered) == shas([merge, image, step10, seed])
    assert [c.landed for c in ordered] == [at(15), at(15), at(2), at(0)]

    hist = canary_history(read_history(log, POLICY), canary)
    assert hist.last_step_at == at(2)
    assert hist.tag_changed_at == at(15)


def test_landing_order_does_not_depend_on_the_order_the_log_comes_in() -> None:
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    image = g.image(1, seed)
    fix = g.add("fix the image's probe", 3, (image,), author=ALICE)
    step10 = g.step(2, seed, 0, 10)
    merge = g.add("Merge pull request #2", 15, (step10, fix))
    docs = g.add("docs", 16, (merge,), author=ALICE)
    expected = shas([docs, merge, fix, image, step10, seed])
    log = g.by_date()
    for seed_value in range(5):
        shuffled = list(log)
        random.Random(seed_value).shuffle(shuffled)
        # The tip is the commit no other names as a parent, wherever it is in the list.
        assert shas(landing_order(shuffled)) == expected


def test_a_squash_merge_lands_as_one_commit_at_its_place_on_the_line(canary: CanarySettings) -> None:
    # GitHub's squash merge writes a new commit on the line (committer date: the merge), the PR's subject
    # with its number, and the bot's trailers in the body it keeps.
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    step10 = g.step(2, seed, 0, 10)
    squash = g.image(15, step10)
    squash = replace(squash, subject=squash.subject + " (#2)")
    g.commits[-1] = squash
    hist = canary_history(read_history(g.by_date(), POLICY), canary)
    assert hist.tag_changed_at == at(15) and hist.last_step_at == at(2)


def test_a_rebase_merge_is_ordered_by_its_place_on_the_line_not_by_its_dates(canary: CanarySettings) -> None:
    # Rebased in the same second as the step (the forge rewrites the committer date to the merge time): only
    # the position on the line tells that the image came after the step.
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    step10 = g.step(2, seed, 0, 10)
    rebased = g.image(2, step10)
    log = [step10, rebased, seed]  # by date the two tie; git may list them either way
    ordered = landing_order(log)
    assert shas(ordered) == shas([rebased, step10, seed])
    hist = canary_history(read_history(log, POLICY), canary)
    assert hist.tag_changed_at == at(2)


def test_a_fast_forwarded_commit_lands_at_its_commit_date_and_after_its_parent_in_order() -> None:
    # A commit rebased keeping its old committer date and pushed as a fast-forward: git keeps no time of the
    # push, so it landed at its own date, yet after the commit it was put on.
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    step10 = g.step(2, seed, 0, 10)
    old = g.image(1, step10)
    newer = g.add("docs", 20, (old,), author=ALICE)
    ordered = landing_order(g.by_date())
    assert shas(ordered) == shas([newer, old, step10, seed])
    assert [c.landed for c in ordered] == [at(20), at(1), at(2), at(0)]
    assert read_history(g.by_date(), POLICY).commits[0].sha == old.sha


def test_a_clock_ahead_on_one_commit_moves_the_landing_of_no_other() -> None:
    g = Branch()
    seed = g.add("seed from a machine whose clock is a day ahead", 24 * 60, author=ALICE)
    step10 = g.step(2, seed, 0, 10)
    assert [c.landed for c in landing_order(g.by_date())] == [at(2), at(24 * 60)]
    assert shas(landing_order(g.by_date())) == shas([step10, seed])


def test_a_persons_revert_merged_after_a_resume_pauses_the_canary(canary: CanarySettings) -> None:
    # Alice reverted the 60 % step on a branch at minute 20; the canary was resumed from an earlier pause at
    # minute 22; her pull request was merged at minute 25: her revert is the newer decision.
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    step10 = g.step(2, seed, 0, 10)
    step60 = g.step(14, step10, 10, 60)
    paused = g.marker(16, step60, "pause")
    revert = g.add(f'Revert "{step60.subject}"', 20, (step60,), body=f"This reverts commit {step60.sha}.", author=ALICE)
    resumed = g.marker(22, paused, "resume")
    merge = g.add("Merge pull request #7 from alice/revert-60", 25, (resumed, revert), author=ALICE)
    log = g.by_date()
    history = read_history(log, POLICY)
    hist = canary_history(history, canary)
    assert hist.paused and "Alice" in hist.paused_reason
    # The revert moved the weights when it landed: the dwell and the apply timeout count from the merge.
    assert hist.last_step_at == at(25)
    assert hist.standing_steps == (step10.sha,)
    assert landing_order(log)[1].sha == revert.sha and merge.sha == log[0].sha


def test_a_merge_and_githubs_revert_of_it_quarantine_at_the_revert_s_landing() -> None:
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    image = g.image(1, seed)
    step10 = g.step(2, seed, 0, 10)
    merge = g.add("Merge pull request #2 from acme/gitbot/production/podinfo-canary", 15, (step10, image))
    # GitHub's Revert button on the merged pull request: a branch with `git revert -m 1` of the merge,
    # itself merged with a merge commit later.
    revert = g.add(
        f'Revert "{merge.subject}"',
        16,
        (merge,),
        body=f"This reverts commit {merge.sha}, reversing\nchanges made to {step10.sha}.",
        author=ALICE,
    )
    docs = g.add("docs", 17, (merge,), author=ALICE)
    merged_revert = g.add("Merge pull request #3 from acme/revert-2-gitbot", 30, (docs, revert), author=ALICE)
    history = read_history(g.by_date(), POLICY)
    (quarantine,) = history.quarantines
    assert (quarantine.target, quarantine.tag, quarantine.since) == ("podinfo-canary", "0.2.2", at(30))
    assert history.standing("podinfo-canary") == []
    assert [c.sha for c in history.revertible("podinfo")] == [step10.sha]
    assert merged_revert.sha == g.by_date()[0].sha


def test_githubs_revert_of_a_merge_squash_merged_without_a_sha_still_undoes_what_it_brought_in() -> None:
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    image = g.image(1, seed)
    step10 = g.step(2, seed, 0, 10)
    merge = g.add("Merge pull request #2 from acme/gitbot/production/podinfo-canary", 15, (step10, image))
    g.add(f'Revert "{merge.subject}" (#3)', 20, (merge,), author=ALICE)
    history = read_history(g.by_date(), POLICY)
    assert list(history.quarantined("podinfo-canary")) == ["0.2.2"]
    assert history.quarantined("podinfo-canary")["0.2.2"].since == at(20)


def test_a_log_cut_short_keeps_what_the_tip_does_not_reach_last_without_a_landing_time() -> None:
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    lost = g.add("reached through a commit beyond the log", 1, (seed,), author=ALICE)
    tip = g.add("tip", 5, (seed,), author=ALICE)
    ordered = landing_order([tip, lost])
    assert shas(ordered) == shas([tip, lost])
    assert ordered[1].landed_at is None and ordered[1].landed == at(1)
