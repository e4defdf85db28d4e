"""Replicas racing to open the same pull request: GitHub (and the fake) refuse the second one from a head with
422 "A pull request already exists", and the adapter takes the open one instead, saying it did not open it."""

from __future__ import annotations

import threading

from gitbot.adapters.github import GitHubForge
from tests.support.github_fake import GitHubFake

HEAD = "gitbot/production/app"
BODY = "| file | old | new |\n|---|---|---|\n\n<!-- gitbot:plan-id=5be1d0 -->\n"


def replica(github_fake: GitHubFake) -> GitHubForge:
    return GitHubForge(github_fake.full_name, github_fake.token, base_url=github_fake.base_url, throttle=False)


def test_the_fake_refuses_a_second_pull_request_from_one_head_as_github_does(github_fake: GitHubFake) -> None:
    first = replica(github_fake)
    first.create_change_request(HEAD, "main", "title", BODY, [])
    # The other replica creates without looking first (its listing of open pull requests was older).
    replica(github_fake).create_change_request(HEAD, "main", "title", BODY, [])
    [refused] = [e for e in github_fake.requests("POST", "/pulls") if e.status != 201]
    assert refused.status == 422
    assert refused.response_body["message"] == "Validation Failed"
    assert refused.response_body["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": f"A pull request already exists for {github_fake.owner}:{HEAD}.",
        }
    ]


def test_the_replica_that_loses_the_race_reports_the_same_pull_request_unchanged(github_fake: GitHubFake) -> None:
    opened = replica(github_fake).create_change_request(HEAD, "main", "title", BODY, ["gitbot"])
    late = replica(github_fake).create_change_request(HEAD, "main", "title", BODY, ["gitbot"])
    assert opened.created == "opened"
    assert (late.created, late.number) == ("unchanged", opened.number)
    assert [e.status for e in github_fake.requests("POST", "/pulls")] == [201, 422]
    assert [p.number for p in github_fake.list_pulls()] == [opened.number]


def test_a_loser_with_a_newer_plan_updates_the_open_pull_request(github_fake: GitHubFake) -> None:
    opened = replica(github_fake).create_change_request(HEAD, "main", "app 1.0.0 -> 1.0.1", BODY, ["gitbot"])
    newer = replica(github_fake).create_change_request(HEAD, "main", "app 1.0.0 -> 1.0.2", BODY + "v2", ["gitbot"])
    assert (newer.created, newer.number, newer.title) == ("updated", opened.number, "app 1.0.0 -> 1.0.2")
    pull = github_fake.pulls[opened.number]
    assert (pull.title, pull.body, pull.labels) == ("app 1.0.0 -> 1.0.2", BODY + "v2", ["gitbot"])


def test_three_replicas_creating_at_once_open_one_pull_request(github_fake: GitHubFake) -> None:
    forges = [replica(github_fake) for _ in range(3)]
    barrier = threading.Barrier(len(forges))
    results: list[str] = []
    lock = threading.Lock()

    def create(forge: GitHubForge) -> None:
        barrier.wait()
        pull = forge.create_change_request(HEAD, "main", "title", BODY, ["gitbot"])
        with lock:
            results.append(pull.created)

    threads = [threading.Thread(target=create, args=(forge,)) for forge in forges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["opened", "unchanged", "unchanged"]
    assert len(github_fake.list_pulls()) == 1
    assert [e.status for e in github_fake.requests("POST", "/pulls")].count(201) == 1
