"""`gitbot validate` and `gitbot once` name every environment variable a policy needs that is not set."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitbot.cli import main

POLICY = """\
apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata: {name: prod}
spec:
  git: {url: "http://127.0.0.1:1/config.git", paths: [clusters/prod], tokenEnv: UX_GIT_TOKEN}
  registries: [{host: registry.acme.example, usernameEnv: UX_REG_USER, passwordEnv: UX_REG_PASSWORD}]
  images:
    - name: podinfo-ga
      repository: registry.acme.example/podinfo
      filter: "0.1.*"
      targets: [{resource: Deployment/test/podinfo-ga, container: podinfod}]
  notifications:
    - slack: {webhookEnv: UX_SLACK_URL}
"""
NAMES = ("UX_GIT_TOKEN", "UX_REG_USER", "UX_REG_PASSWORD", "UX_SLACK_URL")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "prod.yaml").write_text(POLICY, encoding="utf-8")
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITBOT_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def test_validate_names_each_unset_variable_at_its_line(
    policies: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UX_REG_USER", "bot")
    code, out, err = run(capsys, "validate", "--policies", str(policies))
    path = policies / "prod.yaml"
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("gitbot: error: ")]
    assert errors == [
        f"gitbot: error: {path}:5: spec.git.tokenEnv: environment variable UX_GIT_TOKEN is not set or empty",
        f"gitbot: error: {path}:6: spec.registries[0].passwordEnv: environment variable UX_REG_PASSWORD is not set "
        "or empty",
        f"gitbot: error: {path}:13: spec.notifications[0].slack.webhookEnv: environment variable UX_SLACK_URL is not "
        "set or empty",
    ]
    assert "policy valid" not in out


def test_validate_passes_when_every_variable_is_set(
    policies: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in NAMES:
        monkeypatch.setenv(name, "x")
    code, out, err = run(capsys, "validate", "--policies", str(policies))
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "1 policy valid"


def test_validate_without_the_environment_checks_only_the_files(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "validate", "--policies", str(policies), "--skip-env")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "1 policy valid"


def test_once_names_every_unset_variable_before_it_starts(
    policies: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UX_GIT_TOKEN", "x")
    code, out, err = run(capsys, "once", "--policy", "prod", "--policies", str(policies))
    assert code == 2, err
    named = [name for name in NAMES if f"environment variable {name} is not set" in err]
    assert named == ["UX_REG_USER", "UX_REG_PASSWORD", "UX_SLACK_URL"], err
    # Nothing was tried: the git server (nothing listens on port 1) was never reached.
    assert "cannot" not in err and out == ""
