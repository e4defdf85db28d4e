"""`gitbot run` refuses to start with one line when a policy's secret is missing or the port is taken."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitbot.cli import main


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def write_policy(directory: Path) -> Path:
    directory.mkdir()
    path = directory / "staging.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: staging}\nspec:\n"
        "  git: {url: 'https://git.example.test/acme/c.git', tokenEnv: E2E_UNSET_TOKEN}\n"
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["run", *args])
    return int(info.value.code or 0), capsys.readouterr().err


def test_a_missing_secret_names_the_policy_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("E2E_UNSET_TOKEN", raising=False)
    path = write_policy(tmp_path / "policies")
    code, err = run(capsys, "--policies", str(tmp_path / "policies"), "--port", "0")
    assert code == 2
    assert err.splitlines() == [
        f"gitbot: error: {path}: environment variable E2E_UNSET_TOKEN (named by spec.git.tokenEnv) is not set or empty"
    ]


def test_a_port_in_use_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_UNSET_TOKEN", "value-of-the-token")
    monkeypatch.setenv("GITBOT_CACHE_DIR", str(tmp_path / "cache"))
    write_policy(tmp_path / "policies")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run(capsys, "--policies", str(tmp_path / "policies"), "--port", str(port), "--host", "127.0.0.1")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("gitbot: error:")]
    assert errors == [f"gitbot: error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "value-of-the-token" not in err
