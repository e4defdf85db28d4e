"""Servers for the end-to-end tests: the loopback git server, a real registry with Basic auth, the GitHub
fake (its exchanges checked against GitHub's description) and a loopback Slack receiver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.contract.notify.conftest import Receiver, receiver_server
from tests.support.github_fake import github_fake
from tests.support.gitserver import git_server
from tests.support.registry import RunningRegistry, make_htpasswd, start_registry

__all__ = ["git_server", "github_fake", "receiver_server"]

REGISTRY_USER = "robot"
REGISTRY_PASSWORD = "reg-pass-5d0c81e7-secret"


@dataclass(frozen=True)
class AuthRegistry:
    running: RunningRegistry
    user: str
    password: str


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """A `docker-registry` on loopback that wants Basic auth."""
    base = tmp_path_factory.mktemp("e2e-registry")
    htpasswd = make_htpasswd(base / "htpasswd", {REGISTRY_USER: REGISTRY_PASSWORD})
    running = start_registry(base / "registry", htpasswd=htpasswd)
    try:
        yield AuthRegistry(running, REGISTRY_USER, REGISTRY_PASSWORD)
    finally:
        running.stop()


@pytest.fixture
def slack(receiver_server: Receiver) -> Receiver:
    receiver_server.reset()
    return receiver_server
