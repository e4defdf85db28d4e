"""Fixtures for the GitHub adapter contract: a fresh loopback fake per test, checked against the description.

After every test each recorded request and response must match GitHub's OpenAPI description, so the fake
cannot drift from the real API and the adapter cannot send what GitHub would refuse.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitbot.adapters.github import GitHubForge
from tests.support.github_fake import GitHubFake, github_fake
from tests.support.openapi import github_openapi

__all__ = ["github_fake", "github_openapi"]


@pytest.fixture
def forge(github_fake: GitHubFake) -> Iterator[GitHubForge]:
    adapter = GitHubForge(github_fake.full_name, github_fake.token, base_url=github_fake.base_url, throttle=False)
    yield adapter
    adapter.close()
