"""History: bot trailers read back from commits, reverts by people and by the bot, quarantines."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gitbot.domain import Author, CommitInfo
from gitbot.history import landing_order, read_history

_counter = itertools.count(1)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BOT = Author("gitbot", "gitbot@example.org")
ALICE = Author("Alice", "alice@example.org")


def landing_times(log: list[CommitInfo]) -> dict[str, datetime]:
    """When each commit of `log` reached the branch."""
    return {commit.sha: commit.landed for commit in landing_order(log)}


def commit(
    subject: str, body: str = "", trailers: tuple[tuple[str, str], ...] = (), author: Author = BOT
) -> CommitInfo:
    n = next(_counter)
    return CommitInfo(
        sha=f"{n:040x}",
        parents=(f"{n - 1:040x}",),
        author=author,
        committed_at=T0 + timedelta(minutes=n),
        subject=subject,
        body=body,
        trailers=trailers,
    )


def bot_update(policy: str, target: str, old: str, new: str) -> CommitInfo:
    return commit(
        f"gitbot({policy}): {target} {old} -> {new}",
        trailers=(
            ("Gitbot-Policy", policy),
            ("Gitbot-Action", "image-update"),
            ("Gitbot-Target", target),
            ("Gitbot-From", old),
            ("Gitbot-To", new),
            ("Gitbot-Plan-Id", f"plan-{new}"),
        ),
    )


def revert_of(victim: CommitInfo, author: Author = ALICE, with_sha: bool = True) -> CommitInfo:
    body = f"This reverts commit {victim.sha}.\n" if with_sha else ""
    return commit(f'Revert "{victim.subject}"', body=body, author=author)


def test_bot_commits_are_read_newest_first() -> None:
    a = bot_update("prod", "podinfo-ga", "0.1.0", "0.1.1")
    human = commit("docs: readme", author=ALICE)
    b = bot_update("prod", "podinfo-ga", "0.1.1", "0.1.2")
    other = bot_update("staging", "podinfo-ga", "0.1.0", "0.1.2")
    history = read_history([other, b, human, a], "prod")
    assert [c.sha for c in history.commits] == [b.sha, a.sha]
    assert history.commits[0].changes[0].new == "0.1.2"
    assert history.commits[0].plan_id == "plan-0.1.2"
    assert history.quarantined("podinfo-ga") == {}


def test_person_revert_quarantines_the_tag() -> None:
    a = bot_update("prod", "podinfo-ga", "0.1.0", "0.1.1")
    r = revert_of(a)
    history = read_history([r, a], "prod")
    quarantined = history.quarantined("podinfo-ga")
    assert list(quarantined) == ["0.1.1"]
    assert "Alice" in quarantined["0.1.1"].reason
    assert history.standing("podinfo-ga") == []
    assert history.quarantined("podinfo-canary") == {}


def test_revert_button_without_sha_matches_by_subject() -> None:
    a = bot_update("prod", "podinfo-ga", "0.1.0", "0.1.1")
    r = revert_of(a, with_sha=False)
    assert list(read_history([r, a], "prod").quarantined("podinfo-ga")) == ["0.1.1"]


def test_revert_of_the_revert_lifts_the_quarantine() -> None:
    a = bot_update("prod", "podinfo-ga", "0.1.0", "0.1.1")
    r = revert_of(a)
    rr = revert_of(r)
    history = read_history([rr, r, a], "prod")
    assert history.quarantined("podinfo-ga") == {}
    assert [c.sha for c in history.standing("podinfo-ga")] == [a.sha]


def test_abbreviated_sha_in_revert_message() -> None:
    a = bot_update("prod", "podinfo-ga", "0.1.0", "0.1.1")
    r = commit("Revert it", body=f"This reverts commit {a.sha[:12]}.", author=ALICE)
    assert list(read_history([r, a], "prod").quarantined("podinfo-ga")) == ["0.1.1"]


def test_rollback_trailer_quarantines_the_canary_tag() -> None:
    step = commit(
        "gitbot(prod): podinfo canary 0% -> 10%",
        trailers=(
            ("Gitbot-Policy", "prod"),
            ("Gitbot-Action", "canary-step"),
            ("Gitbot-Target", "podinfo"),
            ("Gitbot-From", "0"),
            ("Gitbot-To", "10"),
        ),
    )
    rollback = commit(
        "gitbot(prod): roll back podinfo canary (p99 2.3x GA)",
        body=f"This reverts commit {step.sha}.",
        trailers=(
            ("Gitbot-Policy", "prod"),
            ("Gitbot-Action", "rollback"),
            ("Gitbot-Target", "podinfo"),
            ("Gitbot-From", "10"),
            ("Gitbot-To", "0"),
            ("Gitbot-Quarantine", "podinfo-canary=0.2.2"),
        ),
    )
    history = read_history([rollback, step], "prod")
    assert list(history.quarantined("podinfo-canary")) == ["0.2.2"]
    assert history.commits[1].reverted_by == rollback
    assert [c.sha for c in history.commits if c.action == "canary-step"] == [step.sha]
    assert history.standing("podinfo", "canary-step") == []


def canary_step(weight_from: str, weight_to: str) -> CommitInfo:
    return commit(
        f"gitbot(prod): podinfo canary {weight_from}% -> {weight_to}%",
        trailers=(
            ("Gitbot-Policy", "prod"),
            ("Gitbot-Action", "canary-step"),
            ("Gitbot-Target", "podinfo"),
            ("Gitbot-From", weight_from),
            ("Gitbot-To", weight_to),
        ),
    )


def test_a_rollback_committed_without_a_revert_undoes_the_steps_its_trailers_name() -> None:
    step10, step60 = canary_step("0", "10"), canary_step("10", "60")
    person = commit("Hold podinfo at 50/50", author=ALICE)
    # Its message has no `This reverts commit` line: nothing was reverted, the weights were set to 0% by hand.
    rollback = commit(
        "gitbot(prod): roll back podinfo canary (p99 2.3x GA)",
        body=f"A revert of the canary's 2 steps ({step60.sha[:7]} and {step10.sha[:7]}) would conflict.",
        trailers=(
            ("Gitbot-Policy", "prod"),
            ("Gitbot-Action", "rollback"),
            ("Gitbot-Target", "podinfo"),
            ("Gitbot-From", "50"),
            ("Gitbot-To", "0"),
            ("Gitbot-Quarantine", "podinfo-canary=0.2.2"),
            ("Gitbot-Undoes", step60.sha),
            ("Gitbot-Undoes", step10.sha[:12]),
        ),
    )
    history = read_history([rollback, person, step60, step10], "prod")
    steps = [c for c in history.commits if c.action == "canary-step"]
    assert [c.reverted_by for c in steps] == [rollback, rollback]
    assert history.standing("podinfo", "canary-step") == []
    assert history.undone("podinfo") == rollback
    assert list(history.quarantined("podinfo-canary")) == ["0.2.2"]
    # A trailer value that is no sha undoes nothing.
    odd = replace(rollback, trailers=(*rollback.trailers[:6], ("Gitbot-Undoes", "the steps above")))
    assert all(c.reverted_by is None for c in read_history([odd, step60], "prod").commits if c.action != "rollback")


def test_a_merged_change_landed_when_the_merge_was_made() -> None:
    base = commit("seed", author=ALICE)
    step = commit(
        "gitbot(prod): podinfo canary 0% -> 10%",
        trailers=(
            ("Gitbot-Policy", "prod"),
            ("Gitbot-Action", "canary-step"),
            ("Gitbot-Target", "podinfo"),
            ("Gitbot-From", "0"),
            ("Gitbot-To", "10"),
        ),
    )
    step = replace(step, parents=(base.sha,))
    person = replace(commit("docs", author=ALICE), parents=(base.sha,))
    merge = replace(commit("Merge pull request #1", author=ALICE), parents=(person.sha, step.sha))
    merge = replace(merge, committed_at=step.committed_at + timedelta(hours=2))
    log = [merge, person, step, base]
    landed = landing_times(log)
    assert landed[step.sha] == merge.committed_at
    assert landed[person.sha] == person.committed_at and landed[base.sha] == base.committed_at
    history = read_history(log, "prod")
    assert history.commits[0].landed == merge.committed_at
    assert history.commits[0].commit.committed_at == step.committed_at


def test_a_rollback_reverts_a_change_never_a_pause_marker_or_a_rollback() -> None:
    def canary(action: str, *change: tuple[str, str]) -> CommitInfo:
        return commit(
            f"gitbot(prod): {action} podinfo",
            trailers=(("Gitbot-Policy", "prod"), ("Gitbot-Action", action), ("Gitbot-Target", "podinfo"), *change),
        )

    step = canary("canary-step", ("Gitbot-From", "0"), ("Gitbot-To", "10"))
    paused = canary("pause")
    resumed = canary("resume")
    history = read_history([resumed, paused, step], "prod")
    assert [c.sha for c in history.revertible("podinfo")] == [step.sha]
    rolled = canary("rollback", ("Gitbot-From", "10"), ("Gitbot-To", "0"))
    assert read_history([rolled, paused], "prod").revertible("podinfo") == []


def test_a_squash_merged_revert_without_sha_matches_by_subject() -> None:
    # Squash-merging the revert's pull request appends its number to the subject; the body may lose the sha.
    a = bot_update("prod", "podinfo-ga", "0.1.0", "0.1.1")
    a = replace(a, subject=a.subject + " (#12)")
    r = commit(f'Revert "{a.subject}" (#13)', author=ALICE)
    assert list(read_history([r, a], "prod").quarantined("podinfo-ga")) == ["0.1.1"]
