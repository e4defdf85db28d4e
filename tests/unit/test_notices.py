"""Notices built from history and results: commit links, a person's revert of an image update and the
quarantine it causes, told only by the cycle whose window holds it, and commands that changed nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.config import Policy, load_policy
from gitbot.delivery import Delivery
from gitbot.domain import Author, CommitInfo
from gitbot.history import read_history
from gitbot.notices import command_notice, commit_link, revert_notices

SHA = "0123456789abcdef0123456789abcdef01234567"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://github.com/acme/cluster-config.git", f"https://github.com/acme/cluster-config/commit/{SHA}"),
        ("git@github.com:acme/cluster-config.git", f"https://github.com/acme/cluster-config/commit/{SHA}"),
        ("ssh://git@gitlab.com/acme/infra/config.git", f"https://gitlab.com/acme/infra/config/-/commit/{SHA}"),
        ("https://bitbucket.org/acme/config", f"https://bitbucket.org/acme/config/commits/{SHA}"),
        ("http://127.0.0.1:8080/repos/config.git", None),
        ("https://git.internal.example/acme/config.git", None),
        ("https://github.com/acme", None),
    ],
)
def test_a_commit_link_is_derived_only_for_known_forges(url: str, link: str | None) -> None:
    assert commit_link(url, SHA) == link
    assert commit_link(url, "not-a-sha") is None


def write_policy(tmp_path: Path) -> Policy:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
        "  git: {url: 'https://github.com/acme/config.git', paths: [apps]}\n"
        "  schedule: {interval: 5m}\n"
    )
    return load_policy(path)


def commit(sha: str, subject: str, body: str, at: datetime, author: str, parents: tuple[str, ...]) -> CommitInfo:
    trailers = tuple(
        tuple(line.split(": ", 1)) for line in body.splitlines() if line.startswith("Gitbot-") and ": " in line
    )
    return CommitInfo(sha, parents, Author(author, "a@example.test"), at, subject, body, trailers)  # type: ignore[arg-type]


BOT = commit(
    "b" * 40,
    "gitbot(p): app 1.0.0 -> 1.0.1",
    "Gitbot-Policy: p\nGitbot-Action: image-update\nGitbot-Target: app\nGitbot-From: 1.0.0\nGitbot-To: 1.0.1",
    T0,
    "gitbot",
    ("a" * 40,),
)


def reverted_at(at: datetime) -> list[CommitInfo]:
    revert = commit(
        "c" * 40, 'Revert "gitbot(p): app 1.0.0 -> 1.0.1"', f"This reverts commit {BOT.sha}.", at, "Ann", (BOT.sha,)
    )
    return [revert, BOT]


def test_a_persons_revert_of_an_image_update_tells_the_quarantine_in_its_window_only(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    history = read_history(reverted_at(T0 + timedelta(minutes=3)), "p")
    window = timedelta(minutes=5)
    (told,) = revert_notices(policy, history, now=T0 + timedelta(minutes=5), window=window, source="daemon")
    assert (told.event, told.title, told.name) == ("revert-quarantine", "Ann reverted app 1.0.0 -> 1.0.1", "app")
    assert told.detail == "app 1.0.1 is quarantined until a newer tag"
    assert ("Quarantined", "app 1.0.1") in told.facts
    assert told.link == f"https://github.com/acme/config/commit/{'c' * 40}"
    # The cycles before and after do not tell it: each moment lies in exactly one window.
    for now in (T0 + timedelta(minutes=3), T0 + timedelta(minutes=10)):
        assert revert_notices(policy, history, now=now, window=window, source="daemon") == []


def test_the_bots_own_rollback_is_no_persons_revert(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    rollback = commit(
        "d" * 40,
        "gitbot(p): roll back app 1.0.1 -> 1.0.0",
        f"This reverts commit {BOT.sha}.\n\nGitbot-Policy: p\nGitbot-Action: rollback\nGitbot-Target: app",
        T0 + timedelta(minutes=3),
        "gitbot",
        (BOT.sha,),
    )
    history = read_history([rollback, BOT], "p")
    assert history.commits[1].reverted_by is not None
    now = T0 + timedelta(minutes=5)
    assert revert_notices(policy, history, now=now, window=timedelta(minutes=5), source="daemon") == []


def test_a_command_that_changed_nothing_tells_nothing(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    unchanged = Delivery("podinfo", "unchanged", SHA, "canary podinfo (p) is not paused; nothing recorded")
    assert command_notice(policy, "resume", "podinfo", unchanged, now=T0) is None
    paused = command_notice(policy, "pause", "podinfo", Delivery("podinfo", "committed", SHA, "s"), now=T0, reason="r")
    assert paused is not None
    assert (paused.event, paused.source, paused.link) == (
        "canary-paused",
        "pause",
        f"https://github.com/acme/config/commit/{SHA}",
    )
