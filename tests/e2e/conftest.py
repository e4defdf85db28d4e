"""Servers for the end-to-end tests: the loopback git server, a real registry with Basic auth, the GitHub
fake (its exchanges checked against GitHub's description) and a loopback Slack receiver."""

from __future__ import annotations

import json
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


def manifest(image: str, namespace: str) -> str:
    return (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        f"metadata: {{name: app, namespace: {namespace}}}\n"
        "spec:\n"
        "  template:\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: app\n"
        f"          image: {image}\n"
    )


def policy(name: str, *, git_url: str, namespace: str, repository: str, registry_host: str, extra: str) -> str:
    return (
        "apiVersion: gitbot.dev/v1alpha1\n"
        "kind: Policy\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  git: {{url: {json.dumps(git_url)}, branch: main, paths: [clusters/{namespace}], tokenEnv: GIT_TOKEN,\n"
        "        username: gitbot, author: {name: gitbot, email: gitbot@example.test}}\n"
        "  schedule: {interval: 1s}\n"
        "  images:\n"
        f"    - {{name: app, repository: {json.dumps(repository)}, filter: '1.0.*',\n"
        f"       targets: [{{resource: Deployment/{namespace}/app, container: app}}]}}\n"
        f"  registries: [{{host: {json.dumps(registry_host)}, usernameEnv: REG_USER, passwordEnv: REG_PASSWORD}}]\n"
        "  notifications: [{slack: {webhookEnv: SLACK_URL}}]\n" + extra
    )


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
