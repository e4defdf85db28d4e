"""`python -m gitbot ARGS` in a fresh process, as a person runs it: the tests that check exit codes, printed
lines and start-up imports share this one way of starting the command on this checkout's gitbot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.shared import REPO


def cli_env(**extra: str) -> dict[str, str]:
    """A bare environment (PATH, a UTF-8 locale) that imports this checkout's gitbot, plus `extra`."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONPATH": str(REPO), **extra}


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
