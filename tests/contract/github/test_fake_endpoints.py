"""The fake's other endpoints (git refs, comment listing) driven by PyGithub and checked by the conftest."""

from __future__ import annotations

import pytest
from github import Auth, Github, GithubException

from tests.support.github_fake import GitHubFake

SHA_A = "a" * 40
SHA_B = "b" * 40


@pytest.fixture
def client(github_fake: GitHubFake) -> Github:
    return Github(
        auth=Auth.Token(github_fake.token),
        base_url=github_fake.base_url,
        seconds_between_requests=None,
        seconds_between_writes=None,
        retry=None,
    )


def test_git_refs_create_get_update_delete(client: Github, github_fake: GitHubFake) -> None:
    repo = client.get_repo(github_fake.full_name)
    created = repo.create_git_ref("refs/heads/gitbot/production/app", SHA_A)
    assert created.object.sha == SHA_A
    ref = repo.get_git_ref("heads/gitbot/production/app")
    assert ref.ref == "refs/heads/gitbot/production/app"
    ref.edit(SHA_B, force=True)
    assert github_fake.refs["refs/heads/gitbot/production/app"] == SHA_B
    ref.delete()
    assert "refs/heads/gitbot/production/app" not in github_fake.refs
    with pytest.raises(GithubException) as caught:
        repo.get_git_ref("heads/gitbot/production/app")
    assert caught.value.status == 404
    with pytest.raises(GithubException) as again:
        repo.create_git_ref("refs/heads/main", SHA_A)
    assert again.value.status == 422


def test_comments_listed_oldest_first(client: Github, github_fake: GitHubFake) -> None:
    repo = client.get_repo(github_fake.full_name)
    pull = repo.create_pull(base="main", head="gitbot/p/a", title="t", body="b")
    pull.create_issue_comment("first")
    pull.create_issue_comment("second")
    assert [c.body for c in pull.get_issue_comments()] == ["first", "second"]
    assert github_fake.comments_on(pull.number) == ["first", "second"]
    with pytest.raises(GithubException) as caught:
        repo.create_pull(base="main", head="gitbot/p/a", title="dup", body="")
    assert caught.value.status == 422
    assert [p.number for p in repo.get_pulls(state="all", base="main")] == [pull.number]
