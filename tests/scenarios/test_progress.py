"""Progress of the long interactive commands (`scan`, `tags`, `plan`, `once`): shown on stderr when stderr is a
terminal (a pseudo-terminal here), never when it is a pipe, never on stdout and never with `--json`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.scenarios.conftest import POLICY, World
from tests.support.cli import coverage_env

pytestmark = pytest.mark.real

ERASE = "\r\x1b[K"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def gitbot(world: World, *args: str, terminal: bool, cwd: Path | None = None) -> Run:
    """`python -m gitbot ARGS` with stdout to a file and stderr to a pseudo-terminal (or a pipe)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TERM": "xterm",
        **coverage_env(),
        **world.env,
    }
    # The package under test, wherever it is imported from (not whichever one is installed).
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    command = [sys.executable, "-m", "gitbot", *args]
    with tempfile.TemporaryFile() as out:
        if not terminal:
            done = subprocess.run(
                command,
                env=env,
                cwd=cwd or world.tmp,
                stdout=out,
                capture_output=False,
                stderr=subprocess.PIPE,
                timeout=60,
                check=False,
            )
            out.seek(0)
            return Run(done.returncode, out.read().decode(), done.stderr.decode())
        master, slave = os.openpty()
        try:
            process = subprocess.Popen(command, env=env, cwd=cwd or world.tmp, stdout=out, stderr=slave)
            os.close(slave)
            slave = -1
            chunks = []
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other end is closed, the process is done with it
                    break
                if not data:
                    break
                chunks.append(data)
            returncode = process.wait(timeout=60)
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
        out.seek(0)
        return Run(returncode, out.read().decode(), b"".join(chunks).decode())


def policy_args(world: World) -> list[str]:
    if not world.policy_path.exists():
        world.write_policy()
    return ["--policy", POLICY, "--policies", str(world.policy_path.parent)]


def test_plan_shows_its_stages_on_a_terminal_and_nothing_on_a_pipe(world: World) -> None:
    shown = gitbot(world, "plan", *policy_args(world), terminal=True)
    piped = gitbot(world, "plan", *policy_args(world), terminal=False)

    assert shown.returncode == piped.returncode == 0, shown.stderr + piped.stderr
    stages = [part for part in shown.stderr.split(ERASE) if part]
    prefix = f"gitbot: {POLICY}: "
    assert stages == [
        f"{prefix}{stage}..." for stage in ("checkout", "scan", "history", "tags podinfo-ga", "tags podinfo-canary")
    ] + [f"{prefix}plan..."]
    assert shown.stderr.endswith(ERASE), "the status line is erased before the command ends"
    assert piped.stderr == ""
    assert shown.stdout == piped.stdout
    assert f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2" in shown.stdout and "\x1b" not in shown.stdout


def test_once_shows_the_delivery_stage(world: World) -> None:
    done = gitbot(world, "once", *policy_args(world), terminal=True)

    assert done.returncode == 0, done.stderr
    assert f"{ERASE}gitbot: {POLICY}: deliver..." in done.stderr
    assert done.stdout.startswith("committed ")
    assert world.env["GITBOT_GIT_TOKEN"] not in done.stderr


def test_an_error_starts_on_a_clean_line_after_the_progress(world: World) -> None:
    world.write_policy()
    world.env["GITBOT_GIT_TOKEN"] = "wrong-token-value"

    done = gitbot(world, "plan", *policy_args(world), terminal=True)

    assert done.returncode == 2  # refused credentials: retrying does not help
    lines = done.stderr.replace("\r\n", "\n").split(ERASE)
    assert lines[0] == "" and lines[1] == f"gitbot: {POLICY}: checkout..."
    assert lines[-1].startswith("gitbot: error: ") and "wrong-token-value" not in done.stderr


def test_scan_counts_files_on_a_terminal_only(world: World, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for index in range(40):
        folder = tree / f"app-{index // 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"deploy-{index}.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{index}}}\n"
            "spec:\n  template:\n    spec:\n      containers:\n"
            f"        - {{name: app, image: 'registry.example/app:1.0.{index}'}}\n",
            encoding="utf-8",
        )

    shown = gitbot(world, "scan", "tree", terminal=True, cwd=tmp_path)
    piped = gitbot(world, "scan", "tree", terminal=False, cwd=tmp_path)
    as_json = gitbot(world, "scan", "tree", "--json", terminal=True, cwd=tmp_path)

    assert shown.returncode == piped.returncode == as_json.returncode == 0, shown.stderr
    drawn = [part for part in shown.stderr.split(ERASE) if part]
    assert drawn[0] == "scanning files 0/40" and drawn[-1] == "scanning files 40/40"
    assert shown.stderr.endswith(ERASE)
    assert piped.stderr == "" and as_json.stderr == ""
    assert shown.stdout == piped.stdout and shown.stdout.endswith("40 target(s) in 40 file(s)\n")
    assert as_json.stdout.startswith("[")


def test_tags_reports_pages_on_a_terminal_only(world: World) -> None:
    shown = gitbot(world, "tags", world.image, "--filter", "0.1.*", terminal=True)
    piped = gitbot(world, "tags", world.image, "--filter", "0.1.*", terminal=False)
    as_json = gitbot(world, "tags", world.image, "--json", terminal=True)

    assert shown.returncode == piped.returncode == as_json.returncode == 0, shown.stderr
    assert [part for part in shown.stderr.split(ERASE) if part] == [
        f"listing tags of {world.image}...",
        f"listing tags of {world.image}: 1 page(s), 5 tags",
    ]
    assert piped.stderr == "" and as_json.stderr == ""
    assert shown.stdout == piped.stdout and "selected: 0.1.2" in shown.stdout
