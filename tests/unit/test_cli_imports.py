"""Start-up of the commands that only read: `gitbot scan`, `validate` and `plan` do not import PyGithub,
requests, prometheus-api-client, SciPy (only a sequential check computes with it) or APScheduler's
scheduler (measured with `python -X importtime` in a fresh process), while the commands that use them still
find them. A policy with a cron schedule is checked by APScheduler's cron parser when it loads, so that
module alone may be imported."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gitbot.cli import cli, loaded
from gitbot.commands import COMMANDS
from tests.support.cli import run_gitbot

REPO = Path(__file__).resolve().parents[2]
HEAVY = {"github", "requests", "prometheus_api_client", "scipy", "numpy"}
SCHEDULER = ("apscheduler.schedulers", "apscheduler.executors", "apscheduler.jobstores")


def heavy(modules: set[str]) -> set[str]:
    """The remote clients and the scheduler's machinery among the modules a process imported."""
    return {name for name in modules if name.split(".")[0] in HEAVY or name.startswith(SCHEDULER)}


def imported(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules a fresh `python -m gitbot ARGS` imports, and the finished process."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GITBOT_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
        "GIT_TERMINAL_PROMPT": "0",
        "GITBOT_GIT_TOKEN": "not-a-real-token",
        "GITHUB_TOKEN": "not-a-real-token",
    }
    done = run_gitbot(*args, env=env, cwd=tmp_path, timeout=120, python_flags=("-X", "importtime"))
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "gitbot" in names, done.stderr[-2000:]
    return names, done


def unreachable_policies(tmp_path: Path) -> Path:
    """The example policies (pull requests, canaries), with a git server that refuses at once."""
    folder = tmp_path / "policies"
    folder.mkdir()
    for source in (REPO / "policies").glob("*.yaml"):
        text = source.read_text(encoding="utf-8")
        text = text.replace("https://github.com/acme/cluster-config.git", "http://127.0.0.1:9/cluster-config.git")
        (folder / source.name).write_text(text, encoding="utf-8")
    return folder


def test_scan_imports_none_of_the_remote_clients(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("kind: Pod\nspec:\n  containers:\n    - {name: a, image: nginx:1.25}\n")
    names, done = imported(tmp_path, "scan", "app.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not heavy(names)


def test_validate_imports_none_of_the_remote_clients(tmp_path: Path) -> None:
    names, done = imported(tmp_path, "validate", "--skip-env", "--policies", str(unreachable_policies(tmp_path)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert not heavy(names)


def test_plan_of_a_pull_request_policy_with_canaries_imports_none_of_them(tmp_path: Path) -> None:
    policies = unreachable_policies(tmp_path)
    names, done = imported(tmp_path, "plan", "--policy", "production", "--policies", str(policies))
    # The git server is unreachable: the cycle stops at checkout, after everything it needs was imported.
    assert done.returncode == 1 and "gitbot: error: git fetch failed" in done.stderr, done.stderr[-2000:]
    assert {"git", "httpx"} <= names
    assert not heavy(names)


def test_once_of_a_commit_policy_imports_none_of_them(tmp_path: Path) -> None:
    policies = unreachable_policies(tmp_path)
    names, done = imported(tmp_path, "once", "--policy", "staging", "--policies", str(policies))
    assert done.returncode == 1 and "gitbot: error: git fetch failed" in done.stderr, done.stderr[-2000:]
    assert {"git", "httpx", "gitbot.adapters.registry", "gitbot.adapters.notify"} <= names
    assert not heavy(names)
    # Worker processes start only for a scan or an edit of hundreds of files, which a warm cycle does not make.
    assert "multiprocessing" not in names
    # Signatures are checked only for an image whose policy names a cosign key.
    assert not {name for name in names if name.split(".")[0] == "cryptography"}


def test_the_daemon_still_imports_its_scheduler(tmp_path: Path) -> None:
    names, done = imported(tmp_path, "run", "--help")
    assert done.returncode == 0 and "--max-concurrent-cycles" in done.stdout
    assert "apscheduler.schedulers.background" in names


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_found_by_its_name(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command) and command.name == name
    assert name in cli.list_commands(click.Context(cli))


COLLECTOR = (
    "import atexit, gc, sys\n"
    "atexit.register(lambda: print('collector', gc.isenabled(), gc.get_freeze_count(), file=sys.stderr))\n"
    "import gitbot.__main__\n"
    "sys.argv[0] = 'gitbot'\n"
    "gitbot.__main__.main()\n"
)


def test_a_command_runs_with_the_collector_on_and_its_start_up_frozen(tmp_path: Path) -> None:
    policies = unreachable_policies(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR, "validate", "--skip-env", "--policies", str(policies)],
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    _, enabled, frozen = done.stderr.strip().splitlines()[-1].split()
    # Everything start-up loaded (pydantic's schemas, click, the policy models) is out of the collector's passes.
    assert enabled == "True" and int(frozen) > 50_000


def test_where_the_collector_was_on_loading_a_command_changes_nothing() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    loaded()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
