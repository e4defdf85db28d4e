"""The daemon: scheduling, backoff, shutdown on signals, and the /metrics, /healthz and /readyz endpoints."""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from gitbot.config import Policy
from gitbot.errors import ConfigError, GitbotError, GitError, RegistryError
from gitbot.logs import FIELDS, SecretMasker, configure_logging
from gitbot.service import CycleSummary, Runner, Service, ServiceMetrics, run_service, trigger_for
from tests.support.waiting import Changes

ROOT = Path(__file__).resolve().parents[2]


def make_policy(name: str, **schedule: Any) -> Policy:
    return Policy.model_validate(
        {
            "apiVersion": "gitbot.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": name},
            "spec": {"git": {"url": "http://127.0.0.1:1/repo.git"}, "schedule": schedule or {"interval": 0.1}},
        }
    )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def wait_for(service: Service, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `condition` holds, checked again at each of `service`'s scheduler events: what the tests
    read changes only in the service's jobs, so a change is always followed by one."""
    changes = Changes()
    changes.watch(service)
    try:
        assert changes.wait_until(condition, timeout), "condition not reached in time"
    finally:
        changes.unwatch(service)


@pytest.fixture
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for service in services:
        service.stop()


def run_until(started: list[Service], runner: Runner, done: Callable[[], bool], *names: str) -> Service:
    """Schedule a policy per name every 50 ms side by side until `done()` holds (30 s at most), then stop."""
    policies = [make_policy(name, interval=0.05) for name in names]
    service = Service(policies, runner, port=0, host="127.0.0.1", jitter=0)
    started.append(service)
    service.start()
    wait_for(service, done, timeout=30)
    service.stop()
    return service


def test_two_policies_run_side_by_side_one_cycle_at_a_time_each(started: list[Service]) -> None:
    lock = threading.Lock()
    spans: dict[str, list[tuple[float, float]]] = {"fast": [], "slow": []}
    running: dict[str, int] = {"fast": 0, "slow": 0}
    overlap: list[str] = []

    fast_done = threading.Condition(lock)

    def runner(policy: Policy) -> CycleSummary:
        with lock:
            running[policy.name] += 1
            if running[policy.name] > 1:
                overlap.append(policy.name)
            begin = time.monotonic()
            if policy.name == "slow":
                # The slow policy's cycle lasts three fast cycles, more than its own interval: the scheduler
                # must not start a second one meanwhile.
                target = len(spans["fast"]) + 3
                assert fast_done.wait_for(lambda: len(spans["fast"]) >= target, timeout=30)
            running[policy.name] -= 1
            spans[policy.name].append((begin, time.monotonic()))
            fast_done.notify_all()
        return CycleSummary(policy=policy.name, outcome="unchanged")

    run_until(started, runner, lambda: len(spans["fast"]) >= 5 and len(spans["slow"]) >= 2, "fast", "slow")
    assert overlap == []
    assert len(spans["fast"]) >= 5
    assert len(spans["slow"]) >= 2
    slow = sorted(spans["slow"])
    assert all(a_end <= b_begin for (_, a_end), (b_begin, _) in itertools.pairwise(slow))
    # Side by side: fast cycles ran while a slow one was in progress.
    assert any(s_begin < f_begin < s_end for s_begin, s_end in slow for f_begin, _ in spans["fast"])


def test_failing_policy_backs_off_by_skipping_ticks_and_recovers() -> None:
    outcomes = iter(["raise"] * 4 + ["ok"] * 5)
    ran: list[int] = []
    tick = 0

    def runner(policy: Policy) -> CycleSummary:
        ran.append(tick)
        if next(outcomes) == "raise":
            raise RegistryError("registry answered 503", where="ghcr.io/acme/app")
        return CycleSummary(policy=policy.name, outcome="unchanged")

    service = Service([make_policy("flaky")], runner, port=0, max_backoff_ticks=8)
    job = service.jobs["flaky"]
    for tick in range(1, 21):  # noqa: B007 - the runner reads the current tick
        job()
    # Failures at ticks 1, 2, 4 and 8 (retry at once, then skip 1, 3, 7 ticks); the success at 16 resets.
    assert ran == [1, 2, 4, 8, 16, 17, 18, 19, 20]
    values = samples(service.metrics.exposition().decode())
    assert values[("gitbot_errors_total", frozenset({("policy", "flaky"), ("type", "RegistryError")}))] == 4
    assert values[("gitbot_cycles_total", frozenset({("policy", "flaky"), ("outcome", "unchanged")}))] == 5


def test_backoff_is_capped() -> None:
    ran: list[int] = []
    tick = 0

    def runner(policy: Policy) -> CycleSummary:
        ran.append(tick)
        return CycleSummary(policy=policy.name, outcome="failed", error="push rejected", error_type="PushRejectedError")

    service = Service([make_policy("broken")], runner, port=0, max_backoff_ticks=3)
    for tick in range(1, 21):  # noqa: B007
        service.jobs["broken"]()
    assert ran == [1, 2, 4, 8, 12, 16, 20]


def test_a_broken_policy_never_stops_the_others(started: list[Service]) -> None:
    calls: dict[str, int] = {"good": 0, "bad": 0}

    def runner(policy: Policy) -> CycleSummary:
        calls[policy.name] += 1
        if policy.name == "bad":
            raise ValueError("manifest is not a mapping")
        return CycleSummary(policy=policy.name, outcome="changed", changes={"image-update": 1})

    service = run_until(started, runner, lambda: calls["good"] >= 10 and calls["bad"] >= 2, "good", "bad")
    assert calls["good"] >= 10
    assert 2 <= calls["bad"] <= 6
    values = samples(service.metrics.exposition().decode())
    assert values[("gitbot_errors_total", frozenset({("policy", "bad"), ("type", "ValueError")}))] == calls["bad"]
    assert values[("gitbot_changes_total", frozenset({("policy", "good"), ("kind", "image-update")}))] == calls["good"]


def test_metrics_health_and_readiness_over_http(started: list[Service]) -> None:
    release, second = threading.Event(), threading.Event()
    summaries = {
        "production": CycleSummary(
            policy="production",
            outcome="changed",
            changes={"canary-step": 1, "image-update": 2},
            duration_seconds=1.5,
            canaries={"podinfo": (60, "pass")},
        ),
        "staging": CycleSummary(
            policy="staging", outcome="failed", duration_seconds=0.2, error="boom", error_type="GitError"
        ),
    }
    cycles = {"production": 0, "staging": 0}

    def runner(policy: Policy) -> CycleSummary:
        cycles[policy.name] += 1
        if cycles[policy.name] > 1:
            second.set()
            release.wait(5)
        return summaries[policy.name]

    metrics = ServiceMetrics()
    service = Service(
        [make_policy("production", interval=60), make_policy("staging", interval=60)],
        runner,
        port=0,
        host="127.0.0.1",
        metrics=metrics,
        jitter=0,
        clock=lambda: 1_800_000_000.0,
    )
    assert service.readiness()[0] is False
    started.append(service)
    service.start()
    base = f"http://127.0.0.1:{service.port}"
    assert get(f"{base}/healthz")[0] == 200
    assert get(f"{base}/readyz")[0] == 200
    assert get(f"{base}/nothing")[0] == 404
    wait_for(service, lambda: all(cycles.values()))
    metrics.api_request("registry", "ok")
    metrics.api_request("registry", "ok")
    metrics.api_request("github", "error")
    wait_for(service, lambda: "staging" in get(f"{base}/metrics")[1] and 'type="GitError"' in get(f"{base}/metrics")[1])

    status, text = get(f"{base}/metrics")
    assert status == 200
    values = samples(text)

    def value(name: str, **labels: str) -> float:
        return values[(name, frozenset(labels.items()))]

    assert value("gitbot_cycles_total", policy="production", outcome="changed") == 1
    assert value("gitbot_cycles_total", policy="production", outcome="failed") == 0
    assert value("gitbot_cycles_total", policy="staging", outcome="failed") == 1
    assert value("gitbot_changes_total", policy="production", kind="image-update") == 2
    assert value("gitbot_changes_total", policy="production", kind="canary-step") == 1
    assert value("gitbot_errors_total", policy="staging", type="GitError") == 1
    assert value("gitbot_cycle_duration_seconds_count", policy="production") == 1
    assert value("gitbot_cycle_duration_seconds_sum", policy="production") == 1.5
    assert value("gitbot_cycle_duration_seconds_bucket", policy="production", le="1.0") == 0
    assert value("gitbot_cycle_duration_seconds_bucket", policy="production", le="2.5") == 1
    assert value("gitbot_last_successful_cycle_timestamp_seconds", policy="production") == 1_800_000_000.0
    assert ("gitbot_last_successful_cycle_timestamp_seconds", frozenset({("policy", "staging")})) not in values
    assert value("gitbot_canary_weight_percent", policy="production", canary="podinfo") == 60
    assert value("gitbot_canary_verdict", policy="production", canary="podinfo", gitbot_canary_verdict="pass") == 1
    assert value("gitbot_canary_verdict", policy="production", canary="podinfo", gitbot_canary_verdict="fail") == 0
    assert value("gitbot_api_requests_total", system="registry", outcome="ok") == 2
    assert value("gitbot_api_requests_total", system="github", outcome="error") == 1
    assert value("gitbot_policies") == 2

    # While stopping, the service is alive but no longer ready, and a running cycle is waited for.
    service.scheduler.modify_job("production", next_run_time=datetime.now(UTC))
    assert second.wait(5)
    assert cycles["production"] == 2
    stopper = threading.Thread(target=service.stop)
    stopper.start()
    assert service.stopping.wait(5)
    status, body = get(f"{base}/readyz")
    assert (status, body.strip()) == (503, "stopping")
    assert get(f"{base}/healthz")[0] == 200
    assert stopper.is_alive()
    release.set()
    stopper.join(5)
    assert not stopper.is_alive()


def test_run_service_returns_zero_when_asked_to_stop() -> None:
    stop = threading.Event()
    seen: list[int] = []

    def runner(policy: Policy) -> CycleSummary:
        seen.append(1)
        stop.set()
        return CycleSummary(policy=policy.name, outcome="unchanged")

    code = run_service([make_policy("one")], runner, port=0, host="127.0.0.1", stop_event=stop, jitter=0)
    assert code == 0
    assert seen == [1]


def test_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(GitbotError) as info:
            run_service([make_policy("one")], lambda p: CycleSummary(p.name, "unchanged"), port=port, host="127.0.0.1")
    assert f"127.0.0.1:{port}" in info.value.one_line()


def test_policy_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match="repeated: twin"):
        Service([make_policy("twin"), make_policy("twin")], lambda p: CycleSummary(p.name, "unchanged"), port=0)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # 2026-11-29 is a Sunday; crontab counts Sunday as 0 (and 7), APScheduler 3 counts Monday as 0.
        ("0 9 * * 1-5", datetime(2026, 11, 29, 12, tzinfo=UTC), datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("30 2 * * 0", datetime(2026, 11, 27, 12, tzinfo=UTC), datetime(2026, 11, 29, 2, 30, tzinfo=UTC)),
        ("0 0 * * 7", datetime(2026, 11, 27, 12, tzinfo=UTC), datetime(2026, 11, 29, 0, 0, tzinfo=UTC)),
        ("0 12 * * */2", datetime(2026, 11, 29, 13, tzinfo=UTC), datetime(2026, 12, 1, 12, tzinfo=UTC)),
        ("*/10 * * * *", datetime(2026, 11, 27, 12, 3, tzinfo=UTC), datetime(2026, 11, 27, 12, 10, tzinfo=UTC)),
    ],
)
def test_cron_schedules_follow_crontab_weekdays(cron: str, after: datetime, expected: datetime) -> None:
    trigger = trigger_for(make_policy("cron", cron=cron), jitter=0)
    assert trigger.get_next_fire_time(None, after) == expected


def test_a_cron_field_out_of_range_is_refused_when_the_policy_loads() -> None:
    # Before the service builds a trigger: `gitbot validate` reports it too.
    with pytest.raises(ValidationError, match=r"day of week field '9' must stay within 0-7"):
        make_policy("cron", cron="0 9 * * 9")


SLOW_SERVICE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gitbot.config import Policy
    from gitbot.logs import SecretMasker, configure_logging
    from gitbot.service import CycleSummary, run_service

    marks = Path(sys.argv[1])
    policy = Policy.model_validate({
        "apiVersion": "gitbot.dev/v1alpha1", "kind": "Policy", "metadata": {"name": "slow"},
        "spec": {"git": {"url": "http://127.0.0.1:1/r.git"}, "schedule": {"interval": 0.2}},
    })

    def runner(policy):
        with marks.open("a") as out:
            out.write("start\\n")
        sys.stderr.write('{"event": "test cycle started"}\\n')
        sys.stderr.flush()
        # The cycle runs until the test writes a line to the child's input (or closes it).
        sys.stdin.readline()
        with marks.open("a") as out:
            out.write("end\\n")
        return CycleSummary(policy=policy.name, outcome="unchanged", duration_seconds=1.0)

    configure_logging(SecretMasker(), json=True)
    sys.exit(run_service([policy], runner, port=int(sys.argv[2]), host="127.0.0.1", jitter=0))
    """
)


class StderrLines:
    """A child's stderr, read line by line on a thread, so that a test can wait for one event with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self._stream = process.stderr
        self._lines: list[str] = []
        self._arrived = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            with self._arrived:
                self._lines.append(line)
                self._arrived.notify_all()

    def wait_for_event(self, name: str, timeout: float = 10.0) -> None:
        def seen() -> bool:
            return any(line.startswith("{") and json.loads(line)["event"] == name for line in self._lines)

        with self._arrived:
            assert self._arrived.wait_for(seen, timeout), "".join(self._lines)[-2000:]

    def text(self) -> str:
        """All the child wrote, once it has exited."""
        self._thread.join(timeout=10)
        with self._arrived:
            return "".join(self._lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_lets_the_running_cycle_finish_and_exits_zero(tmp_path: Path, signum: signal.Signals) -> None:
    marks = tmp_path / "marks"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVICE, str(marks), str(free_port())],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = StderrLines(process)
    try:
        stderr.wait_for_event("test cycle started")
        process.send_signal(signum)
        # The cycle ends only once the daemon has taken the signal.
        stderr.wait_for_event("signal received")
        assert process.stdin is not None
        process.stdin.write("release\n")
        process.stdin.flush()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = stderr.text()
    assert process.returncode == 0, err
    assert marks.read_text().split() == ["start", "end"]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names.index("signal received") < names.index("cycle") < names.index("service stopped")
    assert next(e for e in events if e["event"] == "signal received")["signal"] == signum.name


def test_a_second_signal_exits_at_once_without_waiting_for_the_running_cycle(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVICE, str(marks), str(free_port())],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = StderrLines(process)
    try:
        stderr.wait_for_event("test cycle started")
        process.send_signal(signal.SIGINT)
        # The first signal's handler has run before the second arrives (signals are not queued); the cycle
        # is never released.
        stderr.wait_for_event("signal received")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = stderr.text()
    assert process.returncode == 128 + signal.SIGINT, err
    assert marks.read_text().split() == ["start"]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    second = next(e for e in events if e["event"].startswith("second signal"))
    assert second["running"] == ["slow"]


class RecordingMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.recorded: list[CycleSummary] = []

    def record_cycle(self, summary: CycleSummary, *, now: float | None = None) -> None:
        self.recorded.append(summary)
        super().record_cycle(summary, now=now)


def test_a_token_in_a_failing_cycle_is_masked_in_the_service_log() -> None:
    token = "glpat-Xy7TokenThatMustNotLeak"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()

    def runner(policy: Policy) -> CycleSummary:
        if policy.name == "crash":
            raise RuntimeError(f"clone of https://x:{token}@git.example/r.git failed")
        raise GitError(f"push refused for token {token}", where=f"https://{token}@git.example")

    try:
        masker = SecretMasker({token})
        configure_logging(masker, json=True, level=logging.DEBUG, stream=out)
        metrics = RecordingMetrics()
        service = Service(
            [make_policy("crash"), make_policy("refused")], runner, port=0, masker=masker, metrics=metrics
        )
        service.jobs["crash"]()
        service.jobs["refused"]()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert token not in out.getvalue()
    cycles = {e["policy"]: e for e in events if e["event"] == "cycle"}
    assert cycles["crash"]["error"] == "clone of https://x:***@git.example/r.git failed"
    assert cycles["refused"]["error"] == "https://***@git.example: push refused for token ***"
    assert cycles["refused"]["error_type"] == "GitError"
    raised = [e for e in events if e["event"] == "cycle raised"]
    assert "Traceback" in raised[0]["exception"] and "RuntimeError" in raised[0]["exception"]
    assert "exception" not in raised[1]
    # The summaries themselves carry masked text, since they may be passed on to notifications.
    assert [summary.error for summary in metrics.recorded] == [
        "clone of https://x:***@git.example/r.git failed",
        "https://***@git.example: push refused for token ***",
    ]


def test_the_cycle_event_says_why_each_canary_holds() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    why = "analysis inconclusive: canary has 12 requests, needs 100"
    summary = CycleSummary(
        policy="production",
        outcome="unchanged",
        canaries={"podinfo": (10, "inconclusive"), "other": (60, "pass")},
        holds={"podinfo": why},
    )
    try:
        configure_logging(SecretMasker(), json=True, level=logging.INFO, stream=out)
        Service([make_policy("production")], lambda _policy: summary, port=0).record(summary)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    (event,) = [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == "cycle"]
    assert event["canaries"] == {
        "podinfo": {"weight": 10, "verdict": "inconclusive", "holds": why},
        "other": {"weight": 60, "verdict": "pass"},
    }


def test_a_cycle_that_outlasts_its_interval_is_reported_once_not_at_every_skipped_tick(
    started: list[Service], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    releases = [threading.Event() for _ in range(3)]
    cycles: list[str] = []

    def runner(policy: Policy) -> CycleSummary:
        cycles.append(policy.name)
        releases[min(len(cycles), len(releases)) - 1].wait(10)
        return CycleSummary(policy=policy.name, outcome="unchanged")

    service = Service([make_policy("slow", interval=0.05)], runner, port=0, host="127.0.0.1", jitter=0)
    started.append(service)
    skipped: list[object] = []
    service.scheduler.add_listener(skipped.append, EVENT_JOB_MAX_INSTANCES)
    service.start()
    wait_for(service, lambda: len(skipped) >= 4)
    releases[0].set()
    # The next cycle outlasts its interval too: still the same overlap, not said again.
    wait_for(service, lambda: len(cycles) >= 2)
    seen = len(skipped)
    wait_for(service, lambda: len(skipped) >= seen + 4)
    for release in releases:
        release.set()
    service.stop()
    warnings = [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    overlaps = [r for r in caplog.records if r.getMessage() == "cycles overlap"]
    assert warnings == []
    assert len(overlaps) == 1
    fields = getattr(overlaps[0], FIELDS)
    assert fields["policy"] == "slow" and fields["interval_seconds"] == 0.05
    assert "longer than the time between ticks" in fields["why"]
