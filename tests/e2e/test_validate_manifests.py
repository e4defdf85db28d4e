"""`gitbot validate --check-manifests`: a dry-run cycle per policy against the real git server and registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitbot.cli import main
from tests.e2e.conftest import AuthRegistry, manifest, policy
from tests.support.gitserver import GitServer
from tests.support.registry import push_tags


def validate_check_manifests(
    policies: Path,
    git_server: GitServer,
    auth_registry: AuthRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int | str | None, str, str]:
    """`gitbot validate --check-manifests` over `policies` with every variable they name set: code, out, err."""
    for name, value in {
        "GIT_TOKEN": git_server.token,
        "REG_USER": auth_registry.user,
        "REG_PASSWORD": auth_registry.password,
        "SLACK_URL": "http://127.0.0.1:1/hook",
        "GITBOT_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        main(["validate", "--policies", str(policies), "--check-manifests"])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_binding_errors_are_reported_per_policy_and_nothing_is_delivered(
    tmp_path: Path,
    git_server: GitServer,
    auth_registry: AuthRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = auth_registry.running
    repository = f"{registry.host}/acme/check"
    push_tags(registry.url, "acme/check", ["1.0.0", "1.0.3"], auth=(auth_registry.user, auth_registry.password))
    repo = git_server.unique_name("check")
    files = {
        "clusters/staging/app.yaml": manifest(f"{repository}:1.0.0", "staging"),
        "clusters/other/app.yaml": manifest(f"{repository}:1.0.0", "elsewhere"),
    }
    git_server.create_repo(repo, files)
    head = git_server.head(repo)
    policies = tmp_path / "policies"
    policies.mkdir()
    common = {"git_url": git_server.url_for(repo), "repository": repository, "registry_host": registry.host}
    (policies / "good.yaml").write_text(policy("good", namespace="staging", extra="", **common))
    # Its path holds Deployment/elsewhere/app, not the Deployment/other/app its image names.
    bad = policies / "bad.yaml"
    bad.write_text(policy("bad", namespace="other", extra="", **common))
    code, out, err = validate_check_manifests(policies, git_server, auth_registry, tmp_path, monkeypatch, capsys)

    assert code == 2, err
    lines = out.splitlines()
    assert lines[-1].startswith("good: manifests bind; 1 planned change(s) at ")
    errors = err.splitlines()
    assert errors[0].startswith(f"bad: manifests: error: {bad}:")
    assert "image app: no container image of Deployment/other/app named app found under the policy's paths" in errors[0]
    assert errors[-1] == "gitbot: error: 1 of 2 policies failed the manifest check"
    assert git_server.head(repo) == head
    assert git_server.token not in out + err
