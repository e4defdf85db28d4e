"""A registry that serves plain HTTP under a name that is not loopback, reached without `insecure`.

The real registry listens on loopback; a relay on the address of this machine's own host name makes it
reachable under that name, which gitbot (rightly) does not treat as loopback, so it speaks TLS to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitbot.adapters.registry import OciRegistry
from gitbot.cli import main
from gitbot.errors import RegistryError
from tests.contract.registry.conftest import Registries
from tests.support.relay import Relay, relay_by_host_name

pytestmark = pytest.mark.real


@pytest.fixture
def named(registries: Registries) -> Iterator[tuple[str, Relay]]:
    """`<host name>:<port>` that reaches the anonymous registry, and the relay behind it."""
    with relay_by_host_name(registries.anonymous.host) as named:
        yield named


def test_a_plain_http_registry_without_insecure_is_a_configuration_error_at_once(named: tuple[str, Relay]) -> None:
    host, relay = named
    with OciRegistry(backoff=0.01) as registry, pytest.raises(RegistryError) as info:
        registry.list_tags(f"{host}/stefanprodan/podinfo")
    error = info.value
    assert (error.exit_code, error.retryable) == (2, False)
    assert "TLS handshake" in error.message and "plain HTTP" in error.message, error.message
    assert error.hint is not None and f"registries: [{{host: {host}, insecure: true}}]" in error.hint, error.hint
    assert relay.connections == 1


def test_the_same_registry_marked_insecure_lists_its_tags(named: tuple[str, Relay]) -> None:
    host, _relay = named
    with OciRegistry(insecure_hosts=[host]) as registry:
        assert "0.1.12" in registry.list_tags(f"{host}/stefanprodan/podinfo")


def test_gitbot_tags_says_so_and_exits_2(
    named: tuple[str, Relay], docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, _relay = named
    with pytest.raises(SystemExit) as info:
        main(["tags", f"{host}/stefanprodan/podinfo"])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert f"registry {host}: TLS handshake failed" in err, err
    assert "insecure: true" in err, err
