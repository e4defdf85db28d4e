"""The command group: version, help and how errors become one line and an exit code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from gitbot import __version__
from gitbot.cli import cli, main
from gitbot.commands.compose import build_deps
from gitbot.config import load_policy
from gitbot.errors import (
    AuthError,
    ConfigError,
    ForgeError,
    GitAuthError,
    GitbotError,
    PushRejectedError,
    RegistryError,
)


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "no-such-command" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "gitbot", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "Usage:" in result.stdout


TOKEN = "ghp_cliTest0123456789secret"
POLICY = """apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata: {name: leaky}
spec:
  git: {url: https://git.example.test/acme/config.git, tokenEnv: GITBOT_TEST_CLI_TOKEN}
"""


@click.command("leak-check")
@click.argument("policy_file", type=click.Path(path_type=Path))
@click.option("--bug", is_flag=True)
def leak_check(policy_file: Path, bug: bool) -> None:
    """Reads its policy's secrets the way every command does, then fails with the token in the message."""
    build_deps(load_policy(policy_file), need_forge=False)
    # What a library says about a malformed header: it quotes the value, without the file's newline.
    cause = ValueError(f"Invalid return character in header value: 'Bearer {TOKEN}'")
    if bug:
        raise RuntimeError(f"unexpected: {cause}") from cause
    raise ForgeError(f"GitHub refused token {TOKEN}") from cause


@pytest.fixture
def leaky_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "leaky.yaml"
    path.write_text(POLICY)
    # A token from a Secret made with --from-file: the value in the environment ends with a newline.
    monkeypatch.setenv("GITBOT_TEST_CLI_TOKEN", TOKEN + "\n")
    monkeypatch.setenv("GITBOT_CACHE_DIR", str(tmp_path / "cache"))
    cli.add_command(leak_check)
    yield path
    cli.commands.pop("leak-check")


@pytest.mark.parametrize(
    ("args", "code", "traceback"),
    [([], 1, False), (["--debug"], 1, True)],
)
def test_a_token_in_an_error_is_masked_in_the_line_and_the_debug_traceback(
    leaky_policy: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, traceback: bool
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "leak-check", str(leaky_policy)])
    err = capsys.readouterr().err
    assert exit_info.value.code == code
    assert TOKEN not in err
    assert "gitbot: error: GitHub refused token ***" in err
    assert ("Traceback (most recent call last)" in err) is traceback
    if traceback:
        assert "header value: 'Bearer ***'" in err


def test_a_bug_prints_a_masked_traceback_and_exits_1(leaky_policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["leak-check", str(leaky_policy), "--bug"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert TOKEN not in err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("gitbot: internal error: RuntimeError: unexpected:")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["set", "no-such-file.yaml"], ["gitbot set", "ASSIGNMENTS"]),
        (["scan", "--bogus", "x"], ["gitbot scan", "--bogus"]),
        (["tags"], ["gitbot tags", "IMAGE"]),
    ],
)
def test_a_command_line_mistake_is_one_line(
    args: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("gitbot: error: ")
    assert all(word in err for word in words)


def test_gitbot_alone_shows_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([])
    captured = capsys.readouterr()
    assert "Commands:" in captured.out + captured.err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RegistryError("registry r.example.test: cannot reach r.example.test"), 1),
        (RegistryError("registry r.example.test: repository a/b not found (404)", retryable=False), 2),
        (AuthError("registry r.example.test: access to a/b refused (403)"), 2),
        (GitAuthError("git fetch refused the credentials"), 2),
        (GitbotError("a failure that does not say retrying helps"), 2),
        (GitbotError("cannot listen on 127.0.0.1:8080: address in use", retryable=True), 1),
        (ConfigError("p.yaml:3: spec.git.url: required"), 2),
        (PushRejectedError("git push rejected: main moved"), 1),
    ],
)
def test_only_an_error_that_retrying_may_fix_exits_1(error: GitbotError, code: int) -> None:
    assert error.exit_status() == code
