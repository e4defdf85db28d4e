"""A policy whose canary image sits on a plain-HTTP registry not marked `insecure`: the rest of the cycle is
delivered, and `gitbot once` ends with exit 2 and the `registries` entry that fixes it (no retries)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scenarios.conftest import POLICY, World
from tests.scenarios.test_cli import gitbot, policy_args
from tests.scenarios.test_registry_failures import BROKEN_REPO, GarbageHandler, canary_on
from tests.support.registry import serve
from tests.support.relay import Relay, relay_by_host_name

pytestmark = pytest.mark.real


@pytest.fixture
def plain_http() -> Iterator[tuple[str, Relay]]:
    """A plain-HTTP server reached under this machine's host name, as a remote registry would be."""
    server = serve(GarbageHandler)
    try:
        with relay_by_host_name(server.url.removeprefix("http://")) as named:
            yield named
    finally:
        server.stop()


def test_once_delivers_the_rest_then_exits_2_with_the_fix(world: World, plain_http: tuple[str, Relay]) -> None:
    host, relay = plain_http
    canary_on(world, host)

    done = gitbot(world, "once", *policy_args(world))

    assert done.returncode == 2, done.stderr
    log = world.git.log(world.repo)
    assert done.stdout.splitlines() == [f"committed {log[0].sha}  gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2"]
    (error,) = done.stderr.splitlines()
    assert error.startswith(f"gitbot: error: image podinfo-canary: tag lookup at registry {host} failed: "), error
    assert "TLS handshake failed" in error and f"registries: [{{host: {host}, insecure: true}}]" in error, error
    assert relay.connections == 1
    assert f"{host}/{BROKEN_REPO}" not in done.stdout


def test_validate_check_manifests_fails_the_policy_with_the_fix(world: World, plain_http: tuple[str, Relay]) -> None:
    host, _relay = plain_http
    canary_on(world, host)

    done = gitbot(world, "validate", "--policies", str(world.policy_path.parent), "--check-manifests")

    assert done.returncode == 2, done.stdout + done.stderr
    errors = done.stderr.splitlines()
    assert errors[0].startswith(f"{POLICY}: manifests: error: image podinfo-canary: tag lookup at registry {host}")
    assert f"registries: [{{host: {host}, insecure: true}}]" in errors[0]
    assert errors[-1] == "gitbot: error: 1 of 1 policy failed the manifest check"
