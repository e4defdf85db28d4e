"""The gitbot daemon: runs every policy on its schedule and serves /metrics, /healthz and /readyz.

Owns scheduling (one APScheduler job per policy, one cycle at a time per policy, several policies side by
side up to a bound), which policies a replica runs when they are sharded among replicas, backoff after
failing cycles, clean shutdown on SIGTERM/SIGINT, the Prometheus metrics of the service (in its own
CollectorRegistry) and the small HTTP server that exposes them. What one cycle does is the
`runner` it is given; this module builds no adapter and talks to no external system itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Literal

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from gitbot.config import Policy
from gitbot.cron import cron_trigger
from gitbot.errors import ConfigError, GitbotError, UsageError
from gitbot.logs import SecretMasker, log_event
from gitbot.planner import LookupFailure

Outcome = Literal["changed", "unchanged", "failed", "held"]
OUTCOMES: tuple[Outcome, ...] = ("changed", "unchanged", "failed", "held")
VERDICT_STATES = ("pass", "fail", "inconclusive", "unknown")
# Cycle durations span a quick no-op (a fetch) to a slow push with retries.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Each cycle clones, scans and pushes: a few at once keep a small pod busy without starving its probes.
DEFAULT_MAX_CONCURRENT_CYCLES = 8
_log = logging.getLogger("gitbot.service")
# APScheduler's own logger: its warning on every skipped tick is replaced by one event of the service's.
_scheduler_log = logging.getLogger("apscheduler.scheduler")


class _SkippedTickWarnings(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances" warning, logged at every tick
    while a cycle outlasts its interval; the service says once that cycles overlap, and why, instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


_SKIPPED_TICK_WARNINGS = _SkippedTickWarnings()


@dataclass(frozen=True)
class CycleSummary:
    """What one reconcile cycle of one policy did, as the service records and reports it.

    `changes` counts delivered changes by kind (image-update, canary-step, rollback, promote);
    `canaries` maps a canary's name to its weight committed on the branch (percent) and last verdict,
    `proposed` to the weight a pull request proposes (absent when none does); `holds` maps a canary
    that changed nothing to why (e.g. `analysis inconclusive: canary has 12 requests, needs 100`).
    """

    policy: str
    outcome: Outcome
    changes: Mapping[str, int] = field(default_factory=dict)
    duration_seconds: float = 0.0
    canaries: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    holds: Mapping[str, str] = field(default_factory=dict)
    # Images whose tag lookup failed in a cycle that went ahead with everything else.
    lookup_failures: tuple[LookupFailure, ...] = ()
    # The weight an open pull request proposes for a canary (not yet on the branch), by canary name.
    proposed: Mapping[str, int] = field(default_factory=dict)
    # Files under the policy's paths the cycle could not read or parse (skipped, reported as problem files),
    # and the images and canaries it left out because one of them may hold their named target.
    problem_files: int = 0
    left_out: tuple[str, ...] = ()


Runner = Callable[[Policy], CycleSummary]


def _canary_fields(summary: CycleSummary, name: str) -> dict[str, object]:
    """One canary in the cycle event: weight, verdict and, when it changed nothing, why it holds."""
    weight, verdict = summary.canaries[name]
    fields: dict[str, object] = {"weight": weight, "verdict": verdict}
    if name in summary.proposed:
        fields["proposed"] = summary.proposed[name]
    if name in summary.holds:
        fields["holds"] = summary.holds[name]
    return fields


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own (never the process-global one).

    Adapters report their API calls through `api_request`, which can be handed to them as a plain callable.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cycles = Counter(
            "gitbot_cycles", "Reconcile cycles by policy and outcome.", ["policy", "outcome"], registry=r
        )
        self.cycle_duration = Histogram(
            "gitbot_cycle_duration_seconds",
            "Duration of reconcile cycles.",
            ["policy"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.changes = Counter(
            "gitbot_changes", "Changes delivered, by policy and kind.", ["policy", "kind"], registry=r
        )
        self.errors = Counter(
            "gitbot_errors", "Failed cycles by policy and error type.", ["policy", "type"], registry=r
        )
        self.last_success = Gauge(
            "gitbot_last_successful_cycle_timestamp_seconds",
            "Unix time at which the last cycle that did not fail ended.",
            ["policy"],
            registry=r,
        )
        self.canary_weight = Gauge(
            "gitbot_canary_weight_percent",
            "Traffic weight of each canary committed on the environment branch, in percent.",
            ["policy", "canary"],
            registry=r,
        )
        self.canary_proposed_weight = Gauge(
            "gitbot_canary_proposed_weight_percent",
            "Traffic weight an open pull request proposes for a canary, in percent (absent when none does).",
            ["policy", "canary"],
            registry=r,
        )
        self.canary_verdict = Enum(
            "gitbot_canary_verdict",
            "Last analysis verdict of each canary.",
            ["policy", "canary"],
            states=list(VERDICT_STATES),
            registry=r,
        )
        self.api_requests = Counter(
            "gitbot_api_requests",
            "Requests to external systems by system and outcome.",
            ["system", "outcome"],
            registry=r,
        )
        self.backoff_ticks = Gauge(
            "gitbot_policy_backoff_ticks", "Scheduled ticks a failing policy still skips.", ["policy"], registry=r
        )
        self.policies = Gauge("gitbot_policies", "Policies the service runs.", registry=r)
        self.problem_files = Gauge(
            "gitbot_problem_files",
            "Files under a policy's paths its last cycle skipped because they could not be read or parsed.",
            ["policy"],
            registry=r,
        )
        self.lookup_failures = Counter(
            "gitbot_image_lookup_failures",
            "Failed tag lookups of an image (the rest of its cycle went ahead), by policy, image and registry host.",
            ["policy", "image", "host"],
            registry=r,
        )

    def register_policy(self, name: str) -> None:
        """Create the policy's series at zero so that dashboards and alerts see them before any cycle."""
        for outcome in OUTCOMES:
            self.cycles.labels(policy=name, outcome=outcome)
        self.cycle_duration.labels(policy=name)
        self.backoff_ticks.labels(policy=name).set(0)
        self.problem_files.labels(policy=name).set(0)

    def record_cycle(self, summary: CycleSummary, *, now: float | None = None) -> None:
        """Count one cycle: outcome, duration, changes by kind, error type, canary state, last success."""
        policy = summary.policy
        self.cycles.labels(policy=policy, outcome=summary.outcome).inc()
        self.cycle_duration.labels(policy=policy).observe(max(summary.duration_seconds, 0.0))
        for kind, count in summary.changes.items():
            if count > 0:
                self.changes.labels(policy=policy, kind=kind).inc(count)
        if summary.outcome == "failed":
            self.errors.labels(policy=policy, type=summary.error_type or "unknown").inc()
        else:
            self.last_success.labels(policy=policy).set(time.time() if now is None else now)
        if summary.outcome in ("changed", "unchanged"):  # a cycle that scanned: a failed or held one may not have
            self.problem_files.labels(policy=policy).set(summary.problem_files)
        for failure in summary.lookup_failures:
            self.lookup_failures.labels(policy=policy, image=failure.image, host=failure.host).inc()
        for canary, (weight, verdict) in summary.canaries.items():
            self.canary_weight.labels(policy=policy, canary=canary).set(weight)
            if canary in summary.proposed:
                self.canary_proposed_weight.labels(policy=policy, canary=canary).set(summary.proposed[canary])
            else:
                with suppress(KeyError):  # no proposal: no series, rather than a stale one
                    self.canary_proposed_weight.remove(policy, canary)
            state = verdict if verdict in VERDICT_STATES else "unknown"
            self.canary_verdict.labels(policy=policy, canary=canary).state(state)

    def api_request(self, system: str, outcome: str) -> None:
        """Count one request to `system` (registry, github, git, prometheus, slack, webhook)."""
        self.api_requests.labels(system=system, outcome=outcome).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


def default_jitter(policy: Policy) -> float:
    """Seconds of random delay added to each tick: the policy's own, else 10% of the interval (30 s at most)."""
    schedule = policy.spec.schedule
    if schedule.jitter is not None:
        return schedule.jitter.total_seconds()
    if schedule.interval is not None:
        return min(schedule.interval.total_seconds() * 0.1, 30.0)
    return 5.0


def trigger_for(policy: Policy, *, jitter: float | None = None) -> BaseTrigger:
    """The APScheduler trigger of `policy`'s schedule (interval or five-field cron, in UTC)."""
    schedule = policy.spec.schedule
    spread = default_jitter(policy) if jitter is None else jitter
    if schedule.interval is not None:
        return IntervalTrigger(seconds=schedule.interval.total_seconds(), timezone=UTC, jitter=spread or None)
    assert schedule.cron is not None
    try:
        return cron_trigger(schedule.cron, jitter=spread)
    except ValueError as exc:
        raise ConfigError(str(exc), where=policy.where("/spec/schedule/cron")) from exc


def misfire_grace_for(policy: Policy) -> int:
    """Seconds a late tick may still run: half the interval, between 1 s and 5 minutes (60 s for cron)."""
    interval = policy.spec.schedule.interval
    if interval is None:
        return 60
    return int(min(max(interval.total_seconds() / 2, 1.0), 300.0))


_SHARD_RE = re.compile(r"^(\d+)/(\d+)$")
_ORDINAL_RE = re.compile(r"-(\d+)$")
MAX_SHARDS = 1000


@dataclass(frozen=True)
class Shard:
    """Replica `index` of `count`: it runs the policies whose name hashes to it (see `shard_of`)."""

    index: int
    count: int

    def owns(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(name: str, count: int) -> int:
    """The shard (0..count-1) that runs the policy `name`: the same in every process and on every machine.

    Rendezvous hashing over SHA-256 (Python's `hash()` of a string changes from process to process): each
    shard scores the name and the highest score wins, so going from N to N+1 shards moves only about
    1/(N+1) of the policies, all of them to the new shard.
    """
    if count < 1:
        raise ValueError("count must be at least 1")

    def score(index: int) -> bytes:
        return hashlib.sha256(f"{index}\0{name}".encode()).digest()

    return max(range(count), key=score)


def parse_shard(spec: str | None, *, count: str | None = None, hostname: str | None = None) -> Shard | None:
    """`I/N`, or `auto` (I from a StatefulSet pod name such as `gitbot-2` in `hostname`, N from `count`).

    None (no spec) runs every policy. A malformed spec is a UsageError naming the value and the expected form.
    """
    if spec is None or spec.strip() == "":
        return None
    text = spec.strip()
    if text == "auto":
        if not hostname:
            raise UsageError("--shard auto needs the pod name in HOSTNAME (like gitbot-2), and it is empty")
        ordinal = _ORDINAL_RE.search(hostname)
        if ordinal is None:
            raise UsageError(
                f"--shard auto: host name {hostname!r} does not end in -<ordinal> like a StatefulSet pod (gitbot-2)",
                hint="give the shard as I/N instead",
            )
        if count is None or not count.strip():
            raise UsageError("--shard auto needs the number of shards: --shards N or GITBOT_SHARDS")
        if not count.strip().isdigit():
            raise UsageError(f"--shards must be a whole number from 1 to {MAX_SHARDS}, got {count!r}")
        index, total = int(ordinal.group(1)), int(count.strip())
        source = f"--shard auto (host name {hostname}, {total} shards)"
    else:
        match = _SHARD_RE.match(text)
        if match is None:
            raise UsageError(f"--shard must be I/N (like 0/3) or auto, got {spec!r}")
        index, total = int(match.group(1)), int(match.group(2))
        source = f"--shard {text}"
    if not 1 <= total <= MAX_SHARDS:
        raise UsageError(f"{source}: the number of shards must be from 1 to {MAX_SHARDS}, got {total}")
    if index >= total:
        raise UsageError(f"{source}: shard {index} does not exist, shards are numbered 0 to {total - 1}")
    return Shard(index, total)


def shard_policies(policies: Sequence[Policy], shard: Shard | None) -> list[Policy]:
    """The policies `shard` runs (all of them without a shard)."""
    return [p for p in policies if shard is None or shard.owns(p.name)]


class _PolicyJob:
    """One policy's tick: skips ticks while backing off, runs the runner, records and logs the cycle."""

    def __init__(self, policy: Policy, service: Service) -> None:
        self.policy = policy
        self.service = service
        self.failures = 0
        self.skip = 0
        self.lock = threading.Lock()
        # When the running cycle started (monotonic); whether a tick came while it ran; and whether the
        # overlap was reported (once, until a cycle ends within its interval again).
        self.started: float | None = None
        self.overlapped = False
        self.overlap_reported = False

    def __call__(self) -> None:
        service = self.service
        if service.stopping.is_set():
            return
        if not self.lock.acquire(blocking=False):
            # APScheduler's max_instances already prevents this; the lock keeps the rule local and certain.
            return
        try:
            if self.skip > 0:
                self.skip -= 1
                service.metrics.backoff_ticks.labels(policy=self.policy.name).set(self.skip)
                log_event(_log, "cycle skipped", level=logging.DEBUG, policy=self.policy.name, backoff_ticks=self.skip)
                return
            self.started = time.monotonic()
            try:
                summary = self._run()
            finally:
                self.started = None
                if not self.overlapped:
                    self.overlap_reported = False
                self.overlapped = False
            service.record(summary)
            if summary.outcome == "failed":
                self.failures += 1
                # 1st failure: retry at the next tick; then skip 1, 3, 7, ... ticks up to the cap.
                self.skip = min(2 ** (self.failures - 1) - 1, service.max_backoff_ticks)
            else:
                self.failures = 0
                self.skip = 0
            service.metrics.backoff_ticks.labels(policy=self.policy.name).set(self.skip)
        finally:
            self.lock.release()

    def _run(self) -> CycleSummary:
        started = time.monotonic()
        self.service.attempted.set()
        try:
            summary = self.service.runner(self.policy)
        except Exception as exc:
            message = exc.one_line() if isinstance(exc, GitbotError) else str(exc) or exc.__class__.__name__
            # The summary may travel beyond the log handler (notifications), so it carries the masked text.
            message = self.service.masker.mask(message)
            # A GitbotError already says what and where; anything else is a bug worth its traceback.
            log_event(
                _log,
                "cycle raised",
                level=logging.ERROR,
                exc_info=not isinstance(exc, GitbotError),
                policy=self.policy.name,
                error=message,
                error_type=exc.__class__.__name__,
            )
            return CycleSummary(
                policy=self.policy.name,
                outcome="failed",
                duration_seconds=time.monotonic() - started,
                error=message,
                error_type=exc.__class__.__name__,
            )
        if summary.policy != self.policy.name:
            summary = replace(summary, policy=self.policy.name)
        return summary


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_GET(self) -> None:
        service = self.server.service
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, service.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b"ok\n")
        elif path == "/readyz":
            ready, reason = service.readiness()
            self._send(200 if ready else 503, f"{reason}\n".encode())
        else:
            self._send(404, b"not found\n")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes and probes every few seconds would drown the cycle events.
        return


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        super().__init__(address, _Handler)
        self.service = service


class Service:
    """The scheduler and HTTP server of one gitbot process; `start()`, then `stop()` (waits for cycles)."""

    def __init__(
        self,
        policies: Sequence[Policy],
        runner: Runner,
        *,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 - the daemon serves probes and metrics to the cluster
        metrics: ServiceMetrics | None = None,
        jitter: float | None = None,
        max_backoff_ticks: int = 32,
        clock: Callable[[], float] = time.time,
        run_at_start: bool = True,
        masker: SecretMasker | None = None,
        max_concurrent_cycles: int = DEFAULT_MAX_CONCURRENT_CYCLES,
        shard: Shard | None = None,
    ) -> None:
        if max_concurrent_cycles < 1:
            raise ConfigError(f"at most 0 cycles at once would run nothing (got {max_concurrent_cycles})")
        names = [p.name for p in policies]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"policy names must be unique, repeated: {', '.join(repeated)}")
        self.policies = list(policies)
        self.runner = runner
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self.max_backoff_ticks = max_backoff_ticks
        self.clock = clock
        self.masker = masker if masker is not None else SecretMasker()
        self.stopping = threading.Event()
        self.attempted = threading.Event()
        self._jitter = jitter
        self._run_at_start = run_at_start
        self._host, self._port = host, port
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self.jobs = {p.name: _PolicyJob(p, self) for p in self.policies}
        self.shard = shard
        # The pool bounds the cycles running at once; a tick that waits for a worker longer than its misfire
        # grace is skipped, and the policy's next tick comes as scheduled.
        self.max_concurrent_cycles = max(1, min(len(self.policies), max_concurrent_cycles))
        workers = self.max_concurrent_cycles
        _scheduler_log.addFilter(_SKIPPED_TICK_WARNINGS)  # idempotent: a logger keeps one copy of a filter
        self.scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(workers)}, timezone=UTC)
        self.scheduler.add_listener(self._tick_skipped, EVENT_JOB_MAX_INSTANCES)

    @property
    def port(self) -> int:
        """The port the HTTP server listens on (useful when started with port 0)."""
        if self._http is None:
            raise RuntimeError("the service is not started")
        return int(self._http.server_address[1])

    def record(self, summary: CycleSummary) -> None:
        """Count and log a finished cycle."""
        self.metrics.record_cycle(summary, now=self.clock())
        level = (
            logging.WARNING
            if summary.outcome == "failed" or summary.lookup_failures or summary.left_out
            else logging.INFO
        )
        log_event(
            _log,
            "cycle",
            level=level,
            policy=summary.policy,
            outcome=summary.outcome,
            duration_seconds=round(summary.duration_seconds, 3),
            changes=dict(summary.changes),
            canaries={name: _canary_fields(summary, name) for name in summary.canaries},
            error=summary.error,
            error_type=summary.error_type,
            lookup_failures=[failure.one_line() for failure in summary.lookup_failures],
            problem_files=summary.problem_files,
            left_out=list(summary.left_out),
        )

    def readiness(self) -> tuple[bool, str]:
        """Ready while the scheduler runs policies and the service is not stopping."""
        if self.stopping.is_set():
            return False, "stopping"
        if not self.scheduler.running:
            return False, "scheduler not running"
        if not self.policies and not self.attempted.is_set() and self.shard is None:
            # A shard may own no policy (more replicas than policies); it is idle, not broken.
            return False, "no policies loaded"
        count = len(self.policies)
        on_shard = f" on shard {self.shard}" if self.shard is not None else ""
        return True, f"ready: {count} {'policy' if count == 1 else 'policies'}{on_shard}"

    def start(self) -> None:
        """Listen on the HTTP port and schedule every policy; GitbotError when the port cannot be bound."""
        try:
            self._http = _HttpServer((self._host, self._port), self)
        except OSError as exc:
            raise GitbotError(
                f"cannot listen on {self._host}:{self._port}: {exc.strerror or exc}",
                hint="choose another --port or stop the process that uses it",
                retryable=True,  # the process holding it may be one that is stopping (a rolling restart)
            ) from exc
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, name="gitbot-http", daemon=True
        )
        self._http_thread.start()
        now = datetime.now(UTC)
        for policy in self.policies:
            self.metrics.register_policy(policy.name)
            first: dict[str, Any] = {}
            if self._run_at_start and policy.spec.schedule.interval is not None:
                # Start soon rather than one interval later, spread so policies do not all start at once.
                spread = default_jitter(policy) if self._jitter is None else self._jitter
                first["next_run_time"] = now + timedelta(seconds=random.uniform(0, spread))  # noqa: S311
            self.scheduler.add_job(
                self.jobs[policy.name],
                trigger_for(policy, jitter=self._jitter),
                id=policy.name,
                name=f"cycle {policy.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=misfire_grace_for(policy),
                **first,
            )
        self.metrics.policies.set(len(self.policies))
        self.scheduler.start()
        log_event(
            _log,
            "service started",
            policies=[p.name for p in self.policies],
            port=self.port,
            shard=str(self.shard) if self.shard is not None else "all",
            max_concurrent_cycles=self.max_concurrent_cycles,
        )

    def stop(self) -> None:
        """No new cycles; wait for running cycles to finish; close the HTTP server."""
        if self.stopping.is_set() and not self.scheduler.running:
            return
        self.stopping.set()
        log_event(_log, "service stopping", running=self._running_cycles())
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        log_event(_log, "service stopped")

    def _tick_skipped(self, event: JobSubmissionEvent) -> None:
        """A tick came while the policy's cycle still ran: say so, with why, once for as long as the
        policy's cycles keep outlasting their interval (APScheduler's own warning at each tick is dropped)."""
        job = self.jobs.get(str(event.job_id))
        if job is None:
            return
        job.overlapped = True
        if job.overlap_reported:
            return
        job.overlap_reported = True
        started = job.started
        interval = job.policy.spec.schedule.interval
        log_event(
            _log,
            "cycles overlap",
            level=logging.WARNING,
            policy=job.policy.name,
            running_seconds=round(time.monotonic() - started, 3) if started is not None else None,
            interval_seconds=interval.total_seconds() if interval is not None else None,
            why="a cycle has run longer than the time between ticks; ticks are skipped until it ends, "
            "and the next cycle starts at the first tick after it",
        )

    def _running_cycles(self) -> list[str]:
        return [name for name, job in self.jobs.items() if job.lock.locked()]


def run_service(
    policies: Sequence[Policy],
    runner: Runner,
    *,
    port: int,
    host: str = "0.0.0.0",  # noqa: S104
    stop_event: threading.Event | None = None,
    metrics: ServiceMetrics | None = None,
    jitter: float | None = None,
    max_backoff_ticks: int = 32,
    clock: Callable[[], float] = time.time,
    install_signal_handlers: bool = True,
    on_started: Callable[[Service], None] | None = None,
    masker: SecretMasker | None = None,
    run_at_start: bool = True,
    max_concurrent_cycles: int = DEFAULT_MAX_CONCURRENT_CYCLES,
    shard: Shard | None = None,
) -> int:
    """Run `policies` with `runner` until SIGTERM/SIGINT (or `stop_event`); returns the exit code (0).

    Share `stop_event` with the runner so that a cycle in progress can stop before delivering. Signal
    handlers are installed only from the main thread; the previous handlers are restored on return. A second
    signal ends the process at once (exit 128 + the signal's number) instead of waiting for running cycles.
    """
    stop = stop_event if stop_event is not None else threading.Event()
    service = Service(
        policies,
        runner,
        port=port,
        host=host,
        metrics=metrics,
        jitter=jitter,
        max_backoff_ticks=max_backoff_ticks,
        clock=clock,
        run_at_start=run_at_start,
        masker=masker,
        max_concurrent_cycles=max_concurrent_cycles,
        shard=shard,
    )
    previous: dict[signal.Signals, Any] = {}
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # The handler runs between two bytecodes of the main thread, which may be in the middle of writing a
        # log line: writing another one from here fails as a reentrant call on the stream. So the first
        # signal only sets the flag, and the main loop logs it.
        stop.set()
        received.append(signum)
        if len(received) > 1:
            # A person pressing Ctrl-C again does not want to wait for a hanging cycle. A push is atomic on
            # the server, so leaving now can at worst leave a work directory, which the next start removes.
            with suppress(Exception):
                log_event(
                    _log,
                    "second signal: exiting without waiting for running cycles",
                    level=logging.WARNING,
                    signal=signal.Signals(signum).name,
                    running=service._running_cycles(),
                )
            os._exit(128 + signum)

    if install_signal_handlers and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        service.start()
        if on_started is not None:
            on_started(service)
        while not stop.wait(0.5):
            pass
        if received:
            log_event(_log, "signal received", signal=signal.Signals(received[0]).name)
        service.stop()
    finally:
        if not service.stopping.is_set():
            service.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
