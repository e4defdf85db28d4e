"""The command group: version, help and how errors become one line and an exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gitbot import __version__
from gitbot.cli import main


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
