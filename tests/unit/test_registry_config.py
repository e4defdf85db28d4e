"""Where an image lives and which credentials reach it: Docker Hub names, plain HTTP, env and config.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gitbot.adapters.registry import (
    Credentials,
    EnvironmentCredentials,
    OciRegistry,
    env_key,
    is_loopback,
    locate,
)
from gitbot.errors import ConfigError


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("podinfo", ("registry-1.docker.io", "library/podinfo")),
        ("podinfo:6.5.0", ("registry-1.docker.io", "library/podinfo")),
        ("stefanprodan/podinfo", ("registry-1.docker.io", "stefanprodan/podinfo")),
        ("docker.io/podinfo", ("registry-1.docker.io", "library/podinfo")),
        ("index.docker.io/library/nginx", ("registry-1.docker.io", "library/nginx")),
        ("ghcr.io/stefanprodan/podinfo:0.1.0", ("ghcr.io", "stefanprodan/podinfo")),
        ("quay.io/prometheus/prometheus", ("quay.io", "prometheus/prometheus")),
        ("gcr.io/project/app@sha256:" + "a" * 64, ("gcr.io", "project/app")),
        ("europe-docker.pkg.dev/proj/repo/img", ("europe-docker.pkg.dev", "proj/repo/img")),
        ("localhost:5000/app", ("localhost:5000", "app")),
        ("127.0.0.1:5000/team/app:1.0", ("127.0.0.1:5000", "team/app")),
    ],
)
def test_locate(image: str, expected: tuple[str, str]) -> None:
    assert locate(image) == expected


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.9.9.9", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("ghcr.io", False),
        ("127.0.0.1.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plain_http_only_for_loopback_or_insecure_hosts() -> None:
    with OciRegistry(insecure_hosts=["registry.lan:5000", "plain.lan"]) as registry:
        assert registry.endpoint("ghcr.io/a/b") == "https://ghcr.io/v2/a/b/tags/list"
        assert registry.endpoint("podinfo") == "https://registry-1.docker.io/v2/library/podinfo/tags/list"
        assert registry.endpoint("127.0.0.1:5000/a").startswith("http://127.0.0.1:5000/")
        assert registry.endpoint("registry.lan:5000/a").startswith("http://")
        assert registry.endpoint("registry.lan:5001/a").startswith("https://")
        assert registry.endpoint("plain.lan:8080/a").startswith("http://")


def test_env_key() -> None:
    assert env_key("ghcr.io") == "GHCR_IO"
    assert env_key("registry-1.docker.io") == "DOCKER_IO"
    assert env_key("127.0.0.1:5000") == "127_0_0_1_5000"


def _config(tmp_path: Path, auths: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths}), encoding="utf-8")
    return path


def test_credentials_from_environment_win_over_config(tmp_path: Path) -> None:
    config = _config(tmp_path, {"ghcr.io": {"username": "cfg", "password": "cfg-pass"}})
    environ = {"GITBOT_REGISTRY_GHCR_IO_USERNAME": "env", "GITBOT_REGISTRY_GHCR_IO_PASSWORD": "env-pass"}
    assert EnvironmentCredentials(environ, config)("ghcr.io") == Credentials("env", "env-pass")
    assert EnvironmentCredentials({}, config)("ghcr.io") == Credentials("cfg", "cfg-pass")
    assert EnvironmentCredentials({}, config)("quay.io") is None


def test_docker_config_auth_field_and_docker_hub_key(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"hubuser:hub:pass").decode()
    config = _config(
        tmp_path,
        {"https://index.docker.io/v1/": {"auth": encoded}, "https://registry.lan:5000": {"auth": encoded}},
    )
    source = EnvironmentCredentials({}, config)
    assert source("registry-1.docker.io") == Credentials("hubuser", "hub:pass")
    assert source("registry.lan:5000") == Credentials("hubuser", "hub:pass")


def test_docker_config_location_from_environment(tmp_path: Path) -> None:
    _config(tmp_path, {"quay.io": {"username": "q", "password": "p"}})
    assert EnvironmentCredentials({"DOCKER_CONFIG": str(tmp_path)})("quay.io") == Credentials("q", "p")


def test_missing_docker_config_means_anonymous(tmp_path: Path) -> None:
    assert EnvironmentCredentials({}, tmp_path / "absent.json")("ghcr.io") is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "cannot read Docker config"),
        (json.dumps({"auths": []}), "`auths` is not an object"),
        (json.dumps({"auths": {"ghcr.io": "x"}}), "is not an object"),
        (json.dumps({"auths": {"ghcr.io": {"auth": "%%%"}}}), "not base64 user:password"),
    ],
)
def test_broken_docker_config_is_a_config_error(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=fragment) as info:
        EnvironmentCredentials({}, path)("ghcr.io")
    assert info.value.where == str(path)


def test_credentials_never_print_the_secret() -> None:
    assert "s3cr3t" not in repr(Credentials("user", "s3cr3t"))
