"""A plan's message is built in `gitbot.messages` alone: the trailer set every builder writes is the one
`history` reads back, and the hidden plan id of a pull request is written, found and superseded in one way."""

from __future__ import annotations

from datetime import UTC, datetime

from gitbot.domain import Author, CommitInfo
from gitbot.history import TRAILER_PLAN, TRAILER_PREFIX, parse_bot_commit
from gitbot.messages import (
    hand_rollback_message,
    marked_by_bot,
    marker_message,
    plan_id_in,
    plan_marker,
    plan_trailers,
    promotion_trailers,
    pull_request_body,
    step_trailers,
    superseded_body,
    trailer_moves,
)

VICTIM = "0123456789abcdef0123456789abcdef01234567"


def commit(trailers: tuple[tuple[str, str], ...], body: str = "") -> CommitInfo:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return CommitInfo("f" * 40, (), Author("gitbot", "gitbot@example.test"), at, "subject", body, trailers)


def test_a_rollback_by_hand_says_what_it_reverts_and_history_reads_its_trailers_back() -> None:
    message = hand_rollback_message("production", "podinfo-ga", VICTIM, "0.1.1", "0.1.2", [("podinfo-ga", "0.1.2")])

    assert message.subject == "gitbot(production): roll back podinfo-ga 0.1.2 -> 0.1.1"
    assert message.body.startswith(f"This reverts commit {VICTIM}.\n\n")
    assert message.body.endswith("Quarantined: podinfo-ga=0.1.2.")
    assert message.trailers[-1] == (TRAILER_PLAN, message.plan_id) and message.plan_id.endswith(VICTIM[:8])
    assert all(key.startswith(TRAILER_PREFIX) for key, _value in message.trailers)
    read = parse_bot_commit(commit(message.trailers))
    assert read is not None and (read.policy, read.action) == ("production", "rollback")
    assert [(c.target, c.old, c.new) for c in read.changes] == [("podinfo-ga", "0.1.2", "0.1.1")]
    # The same change reverted again gives the same plan id: a command run again finds its pull request.
    again = hand_rollback_message("production", "podinfo-ga", VICTIM, "0.1.1", "0.1.2", [("podinfo-ga", "0.1.2")])
    assert again.plan_id == message.plan_id


def test_every_builder_writes_policy_and_action_first_its_moves_in_order_and_the_plan_id_last() -> None:
    promotion = promotion_trailers("production", "podinfo", 100, "podinfo-ga", "0.1.2", "0.2.1", "p1")
    assert trailer_moves(promotion) == [("podinfo", "100", "0"), ("podinfo-ga", "0.1.2", "0.2.1")]
    assert promotion == plan_trailers(
        "production", "promote", [("podinfo", "100", "0"), ("podinfo-ga", "0.1.2", "0.2.1")], "p1"
    )
    step = step_trailers("production", "podinfo", 10, 60, "p2")
    read = parse_bot_commit(commit(step))
    assert read is not None and read.action == "canary-step" and read.plan_id == "p2"
    assert [(c.target, c.old, c.new) for c in read.changes] == [("podinfo", "10", "60")]


def test_a_marker_has_the_trailers_of_its_action_and_no_plan_id() -> None:
    text = marker_message("production", "podinfo", "pause", "latency")

    assert text.startswith("gitbot(production): pause podinfo canary\n\n")
    trailer_lines = text.rstrip("\n").rsplit("\n\n", 1)[1].splitlines()
    assert trailer_lines == ["Gitbot-Policy: production", "Gitbot-Action: pause", "Gitbot-Target: podinfo"]


def test_the_hidden_plan_id_is_found_and_a_superseded_one_is_no_longer_live() -> None:
    body = pull_request_body(
        summary="s", changes=(), why="", evidence="", rollback="r", plan="abc123", undoes="", rollback_heading="h"
    )

    assert body.endswith(plan_marker("abc123") + "\n") and plan_id_in(body) == "abc123"
    closed = superseded_body(body)
    assert plan_id_in(closed) is None and marked_by_bot(closed) and marked_by_bot(body)
    assert not marked_by_bot("a pull request a person opened")
