"""Contract of GitHubForge against the loopback GitHub fake; every exchange is checked by the conftest."""

from __future__ import annotations

import copy
import time

import pytest

from gitbot.adapters.github import GitHubForge
from gitbot.errors import AuthError, ConfigError, ForgeError
from gitbot.ports import Forge
from tests.support.github_fake import GitHubFake
from tests.support.openapi import Exchange, OpenAPIDescription

HEAD = "gitbot/production/podinfo-ga"
BODY = "| file | old | new |\n|---|---|---|\n\n<!-- gitbot:plan-id=3f2a9c -->\n"


def test_forge_satisfies_the_port(forge: GitHubForge) -> None:
    port: Forge = forge
    assert port.find_change_request(HEAD) is None


def test_create_pull_with_labels(forge: GitHubForge, github_fake: GitHubFake) -> None:
    pull = forge.create_change_request(
        HEAD, "main", "gitbot(production): podinfo-ga 0.1.1 -> 0.1.2", BODY, ["gitbot", "img"]
    )
    assert pull.number == 1
    assert pull.head == HEAD and pull.base == "main"
    assert pull.state == "open" and pull.merged_at is None
    assert pull.url == f"{github_fake.root_url}/acme/cluster-config/pull/1"
    stored = github_fake.list_pulls()
    assert [(p.head, p.base, p.title, p.body, p.labels) for p in stored] == [
        (HEAD, "main", "gitbot(production): podinfo-ga 0.1.1 -> 0.1.2", BODY, ["gitbot", "img"])
    ]
    assert len(github_fake.requests("POST", "/pulls")) == 1


def test_create_pull_twice_updates_instead_of_duplicating(forge: GitHubForge, github_fake: GitHubFake) -> None:
    first = forge.create_change_request(HEAD, "main", "title one", BODY, ["gitbot"])
    # A restarted bot does not know the number: it creates again with the newer plan.
    second = forge.create_change_request(HEAD, "main", "title two", BODY + "v2", ["gitbot", "late"])
    assert second.number == first.number
    assert second.title == "title two" and second.body == BODY + "v2"
    assert len(github_fake.list_pulls()) == 1
    assert github_fake.list_pulls()[0].labels == ["gitbot", "late"]
    # The second create is refused as a duplicate, and only then is the open one looked up and updated.
    assert [e.status for e in github_fake.requests("POST", "/pulls")] == [201, 422]


def test_find_pull_by_head_ignores_other_heads_and_closed(forge: GitHubForge, github_fake: GitHubFake) -> None:
    other = forge.create_change_request("gitbot/production/other", "main", "other", "x", [])
    mine = forge.create_change_request(HEAD, "main", "mine", "y", [])
    found = forge.find_change_request(HEAD)
    assert found is not None and found.number == mine.number
    github_fake.close(mine.number)
    assert forge.find_change_request(HEAD) is None
    found_other = forge.find_change_request("gitbot/production/other")
    assert found_other is not None and found_other.number == other.number


def test_update_pull_edits_title_and_body(forge: GitHubForge, github_fake: GitHubFake) -> None:
    pull = forge.create_change_request(HEAD, "main", "old title", "old body", [])
    updated = forge.update_change_request(pull.number, "new title", "new body")
    assert (updated.title, updated.body) == ("new title", "new body")
    stored = github_fake.pulls[pull.number]
    assert (stored.title, stored.body, stored.state) == ("new title", "new body", "open")
    assert len(github_fake.requests("PATCH")) == 1


def test_close_pull_with_comment(forge: GitHubForge, github_fake: GitHubFake) -> None:
    pull = forge.create_change_request(HEAD, "main", "t", "b", ["gitbot"])
    forge.close_change_request(pull.number, "Superseded: the change is no longer needed.")
    assert github_fake.pulls[pull.number].state == "closed"
    assert github_fake.comments_on(pull.number) == ["Superseded: the change is no longer needed."]
    forge.close_change_request(pull.number, "again")  # already closed: no second comment
    assert github_fake.comments_on(pull.number) == ["Superseded: the change is no longer needed."]
    assert forge.get_change_request(pull.number).state == "closed"


def test_comment_pull_leaves_the_pull_request_open(forge: GitHubForge, github_fake: GitHubFake) -> None:
    pull = forge.create_change_request(HEAD, "main", "t", "b", ["gitbot"])
    forge.comment_change_request(pull.number, "gitbot rolled back canary podinfo on main.")
    assert github_fake.pulls[pull.number].state == "open"
    assert github_fake.comments_on(pull.number) == ["gitbot rolled back canary podinfo on main."]
    assert github_fake.requests("POST", f"/issues/{pull.number}/comments")


def test_open_pulls_by_prefix_across_pages(forge: GitHubForge, github_fake: GitHubFake) -> None:
    heads = [f"gitbot/production/app-{i}" for i in range(3)] + ["feature/person", "gitbot/staging/app"]
    for head in heads:
        forge.create_change_request(head, "main", head, "", [])
    github_fake.merge(1)
    found = forge.open_change_requests("gitbot/production/")
    assert sorted(p.head for p in found) == ["gitbot/production/app-1", "gitbot/production/app-2"]
    # Small pages: the fake pages by per_page and sends a Link header that PyGithub follows.
    narrow = GitHubForge(
        github_fake.full_name, github_fake.token, base_url=github_fake.base_url, throttle=False, per_page=2
    )
    assert sorted(p.head for p in narrow.open_change_requests("gitbot/")) == [
        "gitbot/production/app-1",
        "gitbot/production/app-2",
        "gitbot/staging/app",
    ]
    assert any(("page", "2") in e.query for e in github_fake.requests("GET", "/pulls"))


def test_merged_pull_reads_as_merged(forge: GitHubForge, github_fake: GitHubFake) -> None:
    pull = forge.create_change_request(HEAD, "main", "t", "b", [])
    github_fake.merge(pull.number)
    merged = forge.get_change_request(pull.number)
    assert merged.merged_at is not None and merged.state == "closed"
    assert forge.find_change_request(HEAD) is None


def test_a_change_request_says_when_it_was_merged_and_a_closed_one_that_it_was_not(
    forge: GitHubForge, github_fake: GitHubFake
) -> None:
    merged = forge.create_change_request(HEAD, "main", "t", "b", [])
    merging = github_fake.merge(merged.number)
    refused = forge.create_change_request(f"{HEAD}-2", "main", "t", "b", [])
    github_fake.close(refused.number)

    read = forge.get_change_request(merged.number)
    assert read.merged_at is not None and read.merged_at.tzinfo is not None
    assert read.merged_at.strftime("%Y-%m-%dT%H:%M:%SZ") == merging.merged_at
    closed = forge.closed_change_request(f"{HEAD}-2")
    assert closed is not None and closed.state == "closed" and closed.merged_at is None
    assert forge.closed_change_request(HEAD) is None


def test_post_is_not_retried_and_the_next_attempt_finds_nothing_twice(
    forge: GitHubForge, github_fake: GitHubFake
) -> None:
    github_fake.fail_next("POST", r"/pulls$", 502)
    with pytest.raises(ForgeError, match="HTTP 502") as caught:
        forge.create_change_request(HEAD, "main", "t", "b", [])
    assert not isinstance(caught.value, AuthError)
    assert len(github_fake.requests("POST", "/pulls")) == 1
    pull = forge.create_change_request(HEAD, "main", "t", "b", [])
    assert [p.number for p in github_fake.list_pulls()] == [pull.number]


def test_get_is_retried_on_server_error(forge: GitHubForge, github_fake: GitHubFake) -> None:
    github_fake.fail_next("GET", r"/pulls$", 503)
    assert forge.find_change_request(HEAD) is None
    assert [e.status for e in github_fake.requests("GET", "/pulls")] == [503, 200]


def test_wrong_token_is_auth_error_without_the_token(github_fake: GitHubFake) -> None:
    wrong = "ghp_wrong_0000111122223333"
    forge = GitHubForge(github_fake.full_name, wrong, base_url=github_fake.base_url, throttle=False)
    started = time.monotonic()
    with pytest.raises(AuthError) as caught:
        forge.find_change_request(HEAD)
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "HTTP 401 Bad credentials" in message and "acme/cluster-config" in message
    assert wrong not in message and "\n" not in message


def test_unknown_pull_and_unreachable_api_are_forge_errors(forge: GitHubForge, github_fake: GitHubFake) -> None:
    with pytest.raises(ForgeError, match="HTTP 404"):
        forge.update_change_request(99, "t", "b")
    down = GitHubForge(
        "acme/cluster-config",
        "tok-unreach-1234",
        base_url="http://127.0.0.1:9/api/v3",
        throttle=False,
        retries=0,
    )
    with pytest.raises(ForgeError, match="cannot reach the API") as caught:
        down.find_change_request(HEAD)
    assert "tok-unreach-1234" not in str(caught.value)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="owner/name"):
        GitHubForge("not-a-repo", "t")
    with pytest.raises(ConfigError, match="no GitHub token"):
        GitHubForge("acme/x", "")


# -- the validator itself must be able to fail ---------------------------------------------------------


def _recorded(github_fake: GitHubFake, method: str, path_end: str) -> Exchange:
    return next(e for e in github_fake.exchanges if e.method == method and e.path.endswith(path_end))


def test_validator_catches_malformed_responses_and_requests(
    forge: GitHubForge, github_fake: GitHubFake, github_openapi: OpenAPIDescription
) -> None:
    forge.create_change_request(HEAD, "main", "t", "b", ["gitbot"])
    created = _recorded(github_fake, "POST", "/pulls")
    assert github_openapi.validate(created) == []

    body = copy.deepcopy(created.response_body)
    del body["number"]
    body["state"] = "merged"
    broken = Exchange(created.method, created.path, created.query, created.request_body, 201, body)
    problems = github_openapi.validate(broken)
    assert any("'number' is a required property" in p for p in problems)
    assert any("state" in p and "'merged' is not one of" in p for p in problems)

    bad_request = Exchange(created.method, created.path, (), {"title": 5, "head": HEAD}, 201, created.response_body)
    assert any("request" in p and "5 is not of type 'string'" in p for p in github_openapi.validate(bad_request))

    undocumented = Exchange("GET", created.path, (("colour", "red"),), None, 200, [])
    assert any("query parameter 'colour'" in p for p in github_openapi.validate(undocumented))
    assert github_openapi.validate(Exchange("GET", "/api/v3/nowhere/at/all", (), None, 200, None)) != []

    labels = _recorded(github_fake, "POST", "/labels")
    assert isinstance(labels.request_body, list)  # PyGithub sends the bare array GitHub accepts
    wrong_labels = Exchange(labels.method, labels.path, (), labels.request_body, 200, [{"name": "gitbot"}])
    assert any("'id' is a required property" in p for p in github_openapi.validate(wrong_labels))


def test_validator_matches_refs_with_slashes(github_openapi: OpenAPIDescription) -> None:
    op = github_openapi.operation("GET", "/repos/acme/x/git/ref/heads/gitbot/production/app")
    assert op is not None and op.operation_id == "git/get-ref"
    update = github_openapi.operation("PATCH", "/repos/acme/x/git/refs/heads/gitbot/a/b")
    assert update is not None and update.operation_id == "git/update-ref"


def test_create_pull_that_loses_a_race_adopts_the_existing_one(forge: GitHubForge, github_fake: GitHubFake) -> None:
    existing = github_fake.open_pull(HEAD, title="opened meanwhile")
    # Opened after the caller listed the open pull requests: the POST gets a 422.
    pull = forge.create_change_request(HEAD, "main", "gitbot title", BODY, ["gitbot"])
    assert pull.number == existing.number
    assert [e.status for e in github_fake.requests("POST", "/pulls")] == [422]
    assert len(github_fake.list_pulls()) == 1
    assert (github_fake.pulls[pull.number].title, github_fake.pulls[pull.number].labels) == (
        "gitbot title",
        ["gitbot"],
    )


def test_throttling_is_on_by_default_and_can_be_turned_off(github_fake: GitHubFake) -> None:
    def two_requests(throttle: bool) -> float:
        adapter = GitHubForge(
            github_fake.full_name, github_fake.token, base_url=github_fake.base_url, throttle=throttle
        )
        started = time.monotonic()
        adapter.find_change_request(HEAD)
        adapter.find_change_request(HEAD)  # two GETs of pulls
        adapter.close()
        return time.monotonic() - started

    assert two_requests(throttle=True) >= 0.25
    assert two_requests(throttle=False) < 0.25


def test_closed_pull_is_the_newest_closed_unmerged_one_from_that_head(
    forge: GitHubForge, github_fake: GitHubFake
) -> None:
    assert forge.closed_change_request(HEAD) is None
    first = forge.create_change_request(HEAD, "main", "first", BODY, [])
    assert forge.closed_change_request(HEAD) is None, "an open pull request is not a closed one"
    github_fake.close(first.number)
    other = forge.create_change_request("gitbot/production/other", "main", "other", "x", [])
    github_fake.close(other.number)
    second = forge.create_change_request(HEAD, "main", "second", BODY + "v2", [])
    github_fake.close(second.number)
    merged = forge.create_change_request(HEAD, "main", "merged", "m", [])
    github_fake.merge(merged.number)

    found = forge.closed_change_request(HEAD)

    assert found is not None
    assert (found.number, found.title, found.body, found.state, found.merged_at is not None) == (
        second.number,
        "second",
        BODY + "v2",
        "closed",
        False,
    )
    listings = [e for e in github_fake.requests("GET", "/pulls") if ("state", "closed") in e.query]
    assert len(listings) == 3 and all(("head", f"acme:{HEAD}") in e.query for e in listings)
    assert forge.closed_change_request("gitbot/production/none") is None


def test_pull_requests_carry_the_head_commit_github_reports(forge: GitHubForge, github_fake: GitHubFake) -> None:
    heads = {HEAD: "a" * 40}
    github_fake.follow_refs(heads.get)
    created = forge.create_change_request(HEAD, "main", "title", BODY, [])
    assert created.head_sha == "a" * 40
    heads[HEAD] = "b" * 40  # the branch was force-pushed
    found = forge.find_change_request(HEAD)
    listed = forge.open_change_requests("gitbot/")
    assert found is not None and found.head_sha == "b" * 40
    assert [p.head_sha for p in listed] == ["b" * 40]
