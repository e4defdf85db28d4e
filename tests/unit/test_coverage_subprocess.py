"""A measured run (`make coverage`) counts gitbot started as a command: a process the tests start with the
bare environment of tests/support/cli.py writes its own coverage data, which `coverage combine` joins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import coverage

from tests.shared import REPO
from tests.support.cli import COVERAGE_VARIABLES

# Runs `gitbot --help` the way the CLI tests do; only the command's process imports gitbot.__main__.
_SCRIPT = """
import sys
from pathlib import Path
from tests.support.cli import cli_env, run_gitbot
done = run_gitbot("--help", env=cli_env(), cwd=Path(sys.argv[1]))
sys.exit(done.returncode)
"""


def test_gitbot_run_as_a_command_in_a_measured_run_is_measured(tmp_path: Path) -> None:
    script = tmp_path / "run_cli.py"
    script.write_text(_SCRIPT, encoding="utf-8")
    data = tmp_path / "data" / ".coverage"
    data.parent.mkdir()
    # This run is measured on its own, even when the suite itself runs under `make coverage`.
    env = {name: value for name, value in os.environ.items() if name not in COVERAGE_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "coverage", "run", f"--rcfile={REPO / 'pyproject.toml'}"]
    command += [f"--data-file={data}", str(script), str(tmp_path)]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # One data file for the script's process and one for the command's.
    assert len(list(data.parent.glob(".coverage.*"))) == 2

    measured = coverage.Coverage(data_file=str(data), config_file=str(REPO / "pyproject.toml"))
    measured.combine([str(data.parent)])
    lines = measured.get_data()
    main = next(name for name in lines.measured_files() if Path(name).parts[-2:] == ("gitbot", "__main__.py"))
    assert lines.lines(main)
