"""`gitbot tags` against real registries: output, JSON fields, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitbot.adapters.registry import env_key
from gitbot.cli import main
from tests.contract.registry.conftest import PODINFO_TAGS, USERS, Registries
from tests.support.registry import free_port

pytestmark = pytest.mark.real


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out, err


def test_json_output(registries: Registries, docker_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = f"{registries.anonymous.host}/stefanprodan/podinfo"
    code, out, err = run(["tags", image, "--filter", "0.1.*", "--json"], capsys)
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["image"] == image
    assert document["filter"] == "0.1.*"
    assert document["selected"] == "0.1.12"
    assert document["matching"] == ["0.1.12", "0.1.10", "0.1.9", "0.1.3", "0.1.2", "0.1.1", "0.1.0"]
    assert document["ignored"] == []
    assert document["total"] == len(PODINFO_TAGS)
    assert document["requests"] == 1


def test_text_output_newest_first(
    registries: Registries, docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = f"{registries.anonymous.host}/stefanprodan/podinfo"
    code, out, _ = run(["tags", image, "--filter", "semver:~0.2"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[:4] == ["v0.2.4  <- selected", "0.2.2", "0.2.1", "0.2.0"]
    assert lines[-1] == "selected: v0.2.4"
    code, out, _ = run(["tags", image, "--filter", "semver:~0.2", "--allow-prerelease"], capsys)
    assert "0.2.3-rc.1" in out.splitlines()


def test_no_match_exits_zero_with_none_selected(
    registries: Registries, docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["tags", f"{registries.anonymous.host}/stefanprodan/podinfo", "--filter", "9.*"], capsys)
    assert code == 0
    assert out.splitlines()[-1] == "selected: none"


def test_bad_filter_exits_2_before_any_request(
    registries: Registries, docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["tags", f"{registries.anonymous.host}/x", "--filter", "semver:>>1"], capsys)
    assert code == 2 and out == ""
    assert err.splitlines()[0].startswith("gitbot: error: --filter: invalid semver range")


def test_bad_image_exits_2(docker_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["tags", "Not/Valid:ref:x"], capsys)
    assert code == 2
    assert "invalid image reference" in err


def test_unknown_repository_exits_2(
    registries: Registries, docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["tags", f"{registries.anonymous.host}/missing/repo"], capsys)
    assert code == 2 and out == ""
    assert "repository missing/repo not found" in err.splitlines()[0]


def test_unreachable_registry_exits_1(docker_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["tags", f"127.0.0.1:{free_port()}/app"], capsys)
    assert code == 1
    assert "cannot reach" in err.splitlines()[0]


def test_auth_refused_then_credentials_from_environment(
    registries: Registries,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"{registries.basic.host}/private/app"
    code, _, err = run(["tags", image], capsys)
    assert code == 2
    assert "access to private/app refused (401)" in err.splitlines()[0]
    key = env_key(registries.basic.host)
    monkeypatch.setenv(f"GITBOT_REGISTRY_{key}_USERNAME", "alice")
    monkeypatch.setenv(f"GITBOT_REGISTRY_{key}_PASSWORD", USERS["alice"])
    code, out, err = run(["tags", image, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["selected"] == "1.1.0"
    assert USERS["alice"] not in out + err


def test_token_registry_with_wrong_password_keeps_the_secret(
    registries: Registries,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = env_key(registries.token.host)
    monkeypatch.setenv(f"GITBOT_REGISTRY_{key}_USERNAME", "alice")
    monkeypatch.setenv(f"GITBOT_REGISTRY_{key}_PASSWORD", "wrong-secret-9138")
    code, out, err = run(
        ["tags", f"{registries.token.host}/secure/app", "--insecure-host", registries.token.host], capsys
    )
    assert code == 2
    assert "refused the credentials" in err
    assert "wrong-secret-9138" not in out + err


def test_invalid_tags_are_counted_not_printed(
    hostile_host: str, docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["tags", f"{hostile_host}/hostile/invalid"], capsys)
    assert code == 0
    assert "X-Injected" not in out and "x" * 200 not in out
    assert "6 invalid tags ignored" in out
    code, out, _ = run(["tags", f"{hostile_host}/hostile/invalid", "--json"], capsys)
    document = json.loads(out)
    assert len(document["ignored"]) == 6
    assert document["matching"] == ["1.0.2", "1.0.0"]
