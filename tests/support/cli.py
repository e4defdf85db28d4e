"""`python -m gitbot ARGS` in a fresh process, as a person runs it: the tests that check exit codes, printed
lines and start-up imports share this one way of starting the command on this checkout's gitbot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.shared import REPO

# The variables by which coverage measures the Python processes a measured run starts (`make coverage`):
# kept in every bare environment, so that gitbot run as a command counts as gitbot run in-process does.
COVERAGE_VARIABLES = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START", "COVERAGE_FILE")


def coverage_env() -> dict[str, str]:
    """Coverage's variables of this process, when a measured run set them; empty otherwise."""
    return {name: os.environ[name] for name in COVERAGE_VARIABLES if name in os.environ}


def cli_env(**extra: str) -> dict[str, str]:
    """A bare environment (PATH, a UTF-8 locale) that imports this checkout's gitbot, plus `extra`."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {"PATH": path, "LANG": "C.UTF-8", "PYTHONPATH": str(REPO), **coverage_env(), **extra}


def run_gitbot(
    *args: str,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 60,
    python_flags: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """The finished `python [FLAGS] -m gitbot ARGS` run in `cwd` with exactly `env`; never raises on exit codes."""
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "gitbot", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
