"""The Python that runs `gitbot` in the whole-cycle benchmark: one holding gitbot's runtime dependencies only.

A user's gitbot (`pip install .`, the Docker image) has no development tools beside it; this checkout's
environment does, and some of them change what gitbot's dependencies load at start-up (httpx loads its
command-line client, with rich and Pygments, wherever those are installed). The benchmark therefore makes a
virtual environment with exactly the `[project] dependencies` of pyproject.toml under
~/.cache/gitbot-bench-venv/<hash of that list>/ (once; later runs reuse it) and runs this checkout's code
with it through PYTHONPATH, so the code measured is always the code here. When it cannot be made (no
package index), the benchmark says so and runs with this interpreter.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "gitbot-bench-venv"


def runtime_dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The requirement strings of `[project] dependencies`."""
    with pyproject.open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def runtime_python(cache: Path = CACHE) -> tuple[str, str]:
    """(interpreter, what it is) for running gitbot: the runtime-only environment, made when missing."""
    requirements = runtime_dependencies()
    key = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()[:16]
    home = cache / key
    python = home / "bin" / "python"
    ready = home / "ready"
    if not ready.is_file():
        try:
            venv.create(home, with_pip=True, clear=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
                check=True,
                capture_output=True,
                timeout=900,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return sys.executable, f"this interpreter (no runtime-only environment: {type(exc).__name__})"
        ready.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    return str(python), f"{home} (gitbot's runtime dependencies only)"
