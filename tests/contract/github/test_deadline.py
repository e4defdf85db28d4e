"""A GitHub that answers a byte at a time is cut at the request's total deadline, however long each read may
wait: a one-line ForgeError naming the repository and the server, and nothing made after the cut request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitbot.adapters.github import REQUEST_DEADLINE, GitHubForge
from gitbot.errors import ConfigError, ForgeError
from tests.support.drip import DripServer
from tests.support.github_fake import GitHubFake

HEAD = "gitbot/production/app"
BODY = "body\n\n<!-- gitbot:plan-id=5be1d0 -->\n"


@pytest.fixture
def slow_github(github_fake: GitHubFake) -> Iterator[DripServer]:
    """The fake behind a loopback server that drips the answer to pull request creation (headers or body)."""
    with DripServer(drips=lambda method, path: method == "POST", upstream=github_fake.root_url) as drip:
        yield drip


def forge_through(drip: DripServer, github_fake: GitHubFake, deadline: float) -> GitHubForge:
    return GitHubForge(
        github_fake.full_name, github_fake.token, base_url=f"{drip.url}/api/v3", throttle=False, deadline=deadline
    )


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_dripping_answer_to_a_create_is_cut_at_the_deadline(
    slow_github: DripServer, github_fake: GitHubFake, mode: str
) -> None:
    slow_github.mode = mode
    forge = forge_through(slow_github, github_fake, 0.5)
    try:
        with pytest.raises(ForgeError) as caught:
            forge.create_change_request(HEAD, "main", "title", BODY, ["gitbot"])
    finally:
        forge.close()
    assert caught.value.one_line() == (
        f"GitHub create pull request on {github_fake.full_name} at {slow_github.url}/api/v3: "
        "no complete answer within 0.5 s; cut off"
    )
    assert github_fake.token not in str(caught.value)
    # Cut long before the 2,000 bytes the server meant to drip (one every 0.05 s, 15 s per read allowed).
    assert slow_github.sent < 200
    assert [method for method, _ in slow_github.dripped] == ["POST"]
    # Nothing after the cut: no labels were asked for, and the lookup after the failed create found nothing.
    assert github_fake.requests("POST", "/labels") == []
    assert github_fake.list_pulls() == []


def test_reads_are_cut_too_and_the_default_deadline_is_a_minute(
    github_fake: GitHubFake,
) -> None:
    assert REQUEST_DEADLINE == 60.0
    with DripServer(
        drips=lambda method, path: method == "GET" and "/pulls" in path, upstream=github_fake.root_url
    ) as drip:
        forge = forge_through(drip, github_fake, 0.5)
        try:
            with pytest.raises(ForgeError, match=r"list pull requests .*: no complete answer within 0\.5 s; cut off"):
                forge.open_change_requests("gitbot/")
        finally:
            forge.close()
        assert drip.sent < 200
        # A read is retried on failures, but not after the cut: the deadline is the whole request's.
        assert len(drip.dripped) == 1
    with pytest.raises(ConfigError, match="deadline"):
        GitHubForge(github_fake.full_name, github_fake.token, base_url=github_fake.base_url, deadline=0)
