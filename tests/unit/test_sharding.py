"""Replicas share the work: `--shard I/N` and `--shard auto` pick each policy for exactly one shard by a hash
that every process computes alike, and one daemon runs a bounded number of cycles at once."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_SUBMITTED, JobEvent

from gitbot.cli import main
from gitbot.config import Policy
from gitbot.errors import UsageError
from gitbot.service import CycleSummary, Service, Shard, parse_shard, shard_of, shard_policies
from tests.support.cli import coverage_env
from tests.support.waiting import Changes

ROOT = Path(__file__).resolve().parents[2]
NAMES = [f"team-{i:03d}" for i in range(300)]


def make_policy(name: str) -> Policy:
    return Policy.model_validate(
        {
            "apiVersion": "gitbot.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": name},
            "spec": {"git": {"url": "http://127.0.0.1:1/repo.git"}, "schedule": {"interval": 60}},
        }
    )


def test_every_policy_runs_on_exactly_one_shard_and_the_shards_share_them() -> None:
    for count in (1, 2, 3, 5):
        owners = {name: [i for i in range(count) if Shard(i, count).owns(name)] for name in NAMES}
        assert all(len(found) == 1 for found in owners.values())
        sizes = [sum(found == [i] for found in owners.values()) for i in range(count)]
        # A fair share each, give or take: no shard idles while another carries most of the work.
        assert min(sizes) >= len(NAMES) / count * 0.6, sizes


def test_adding_a_shard_moves_policies_only_to_the_new_shard() -> None:
    moved = [name for name in NAMES if shard_of(name, 3) != shard_of(name, 4)]
    assert moved, "a fourth shard must take some policies"
    assert all(shard_of(name, 4) == 3 for name in moved)
    assert len(moved) < len(NAMES) / 2


def test_the_shard_of_a_name_is_the_same_in_every_process() -> None:
    script = (
        "import json, sys; from gitbot.service import shard_of; "
        "print(json.dumps([shard_of(n, 7) for n in sys.argv[1:]]))"
    )
    answers = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", script, *NAMES[:50]], env=env, capture_output=True, text=True, check=True
        )
        answers.add(out.stdout.strip())
    assert answers == {json.dumps([shard_of(n, 7) for n in NAMES[:50]])}


@pytest.mark.parametrize(
    ("spec", "count", "hostname", "expected"),
    [
        (None, None, None, None),
        ("0/1", None, None, Shard(0, 1)),
        ("2/3", None, None, Shard(2, 3)),
        (" 1/2 ", None, None, Shard(1, 2)),
        ("auto", "3", "gitbot-2", Shard(2, 3)),
        ("auto", "5", "gitbot-prod-0", Shard(0, 5)),
    ],
)
def test_shard_specs(spec: str | None, count: str | None, hostname: str | None, expected: Shard | None) -> None:
    assert parse_shard(spec, count=count, hostname=hostname) == expected


@pytest.mark.parametrize(
    ("spec", "count", "hostname", "message"),
    [
        ("3/3", None, None, "--shard 3/3: shard 3 does not exist, shards are numbered 0 to 2"),
        ("0/0", None, None, "--shard 0/0: the number of shards must be from 1 to 1000, got 0"),
        ("1-3", None, None, "--shard must be I/N (like 0/3) or auto, got '1-3'"),
        ("-1/3", None, None, "--shard must be I/N (like 0/3) or auto, got '-1/3'"),
        ("auto", "3", None, "--shard auto needs the pod name in HOSTNAME (like gitbot-2), and it is empty"),
        ("auto", "3", "laptop", "does not end in -<ordinal>"),
        ("auto", None, "gitbot-1", "--shard auto needs the number of shards: --shards N or GITBOT_SHARDS"),
        ("auto", "three", "gitbot-1", "--shards must be a whole number from 1 to 1000, got 'three'"),
        ("auto", "2", "gitbot-2", "shard 2 does not exist, shards are numbered 0 to 1"),
    ],
)
def test_bad_shard_specs_are_usage_errors(spec: str, count: str | None, hostname: str | None, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard(spec, count=count, hostname=hostname)
    assert message in caught.value.one_line()
    assert caught.value.exit_code == 2


def test_shard_policies_keeps_the_owned_ones_in_order() -> None:
    policies = [make_policy(name) for name in NAMES[:30]]
    parts = [shard_policies(policies, Shard(i, 3)) for i in range(3)]
    assert sorted(p.name for part in parts for p in part) == sorted(NAMES[:30])
    assert all([p.name for p in part] == sorted(p.name for p in part) for part in parts)
    assert shard_policies(policies, None) == policies


@pytest.fixture
def _keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("_keep_root_logging")
def test_gitbot_run_refuses_a_bad_shard_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "policies").mkdir()
    with pytest.raises(SystemExit) as info:
        main(["run", "--policies", str(tmp_path / "policies"), "--port", "0", "--shard", "4/4"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "gitbot: error: --shard 4/4: shard 4 does not exist, shards are numbered 0 to 3"
    ]


def test_gitbot_run_with_shard_auto_logs_the_policies_of_its_shard(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    names = NAMES[:12]
    for name in names:
        (policies / f"{name}.yaml").write_text(
            f"apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}}}\n"
            "spec:\n  git: {url: 'http://127.0.0.1:9/c.git'}\n  schedule: {interval: 1h}\n"
        )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **coverage_env(),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "HOSTNAME": "gitbot-1",
        "GITBOT_SHARDS": "3",
        "GITBOT_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = [sys.executable, "-m", "gitbot", "run", "--policies", str(policies), "--port", "0"]
    command += ["--host", "127.0.0.1", "--shard", "auto", "--no-once-at-start", "--log-format", "json"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        started = json.loads(process.stderr.readline())
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert process.returncode == 0
    assert started["event"] == "service started"
    assert started["shard"] == "1/3"
    assert started["policies"] == [name for name in sorted(names) if shard_of(name, 3) == 1]
    assert started["max_concurrent_cycles"] == min(8, len(started["policies"]))


def test_cycles_beyond_the_bound_wait_for_a_free_slot() -> None:
    policies = [make_policy(name) for name in NAMES[:6]]
    gate = threading.Event()
    lock = threading.Lock()
    running: list[str] = []
    peak: list[int] = [0]
    ran: list[str] = []
    changes = Changes()

    def runner(policy: Policy) -> CycleSummary:
        with lock:
            running.append(policy.name)
            peak[0] = max(peak[0], len(running))
        changes.changed()
        gate.wait(10)
        with lock:
            running.remove(policy.name)
            ran.append(policy.name)
        changes.changed()
        return CycleSummary(policy=policy.name, outcome="unchanged")

    service = Service(policies, runner, port=0, host="127.0.0.1", jitter=0, max_concurrent_cycles=2)
    submitted: list[Any] = []
    all_submitted = threading.Event()

    def on_submitted(event: JobEvent) -> None:
        submitted.append(event.job_id)
        if len(submitted) == len(policies):
            all_submitted.set()

    service.scheduler.add_listener(on_submitted, EVENT_JOB_SUBMITTED)
    service.start()
    try:
        # Every policy's first tick is due at once and handed to the executor; only two may run.
        assert all_submitted.wait(10)
        assert changes.wait_until(lambda: len(running) == 2)
        with lock:
            assert len(running) == 2 and ran == []
        gate.set()
        assert changes.wait_until(lambda: len(ran) == len(policies))
    finally:
        service.stop()
    assert sorted(ran) == sorted(p.name for p in policies)
    assert peak[0] == 2


def test_zero_concurrent_cycles_is_refused() -> None:
    with pytest.raises(Exception, match="at most 0 cycles at once"):
        Service([make_policy("a")], lambda p: CycleSummary(p.name, "unchanged"), port=0, max_concurrent_cycles=0)
