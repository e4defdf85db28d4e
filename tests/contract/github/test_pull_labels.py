"""The labels of a pull request as GitHubForge reads them from a listing, and adding missing ones in one request."""

from __future__ import annotations

from gitbot.adapters.github import GitHubForge
from tests.support.github_fake import GitHubFake

HEAD = "gitbot/production/podinfo-ga"


def test_listed_pull_requests_carry_their_labels_without_a_request_each(
    forge: GitHubForge, github_fake: GitHubFake
) -> None:
    labelled = github_fake.open_pull(HEAD, title="labelled")
    labelled.labels[:] = ["gitbot", "release"]
    github_fake.open_pull("gitbot/production/other", title="bare")

    listed = {p.head: p.labels for p in forge.open_change_requests("gitbot/production/")}
    found = forge.find_change_request(HEAD)

    assert listed == {HEAD: ("gitbot", "release"), "gitbot/production/other": ()}
    assert found is not None and found.labels == ("gitbot", "release")
    # The two listings and nothing else: no request for the repository, per pull request or per label.
    assert [e.path.rsplit("/", 1)[-1] for e in github_fake.requests()] == ["pulls", "pulls"]


def test_add_labels_sends_one_request_and_keeps_the_labels_there(forge: GitHubForge, github_fake: GitHubFake) -> None:
    pull = github_fake.open_pull(HEAD, title="bare")
    pull.labels[:] = ["needs-review"]
    forge.find_change_request(HEAD)  # the repository is known from here on, as in a cycle
    before = len(github_fake.requests())

    forge.add_labels(pull.number, ["gitbot", "release"])

    assert [(e.method, e.path.rsplit("/", 3)[-3:]) for e in github_fake.requests()[before:]] == [
        ("POST", ["issues", str(pull.number), "labels"])
    ]
    assert github_fake.pulls[pull.number].labels == ["needs-review", "gitbot", "release"]
