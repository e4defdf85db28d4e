"""A real Prometheus over deterministic, Istio-shaped data, for contract and scenario tests.

`Scenario` describes one namespace's traffic to `podinfo-ga` and `podinfo-canary` (request rate, canary
share over time, 5xx ratio and latency profile per side, scrape gaps). `start_prometheus(tmp_path,
*scenarios)` writes the samples as OpenMetrics, backfills them with `promtool tsdb create-blocks-from
openmetrics`, starts Debian's `prometheus` on a free loopback port over that data dir and waits until it
is ready; `PrometheusServer.stop()` ends it. Sample times are fixed (`BASE_TIME`), so tests query at
explicit moments (`Scenario.at(...)`) and never depend on the wall clock.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from gitbot.demo.localservers import istio_openmetrics

# Istio's default buckets for istio_request_duration_milliseconds.
ISTIO_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
)  # fmt: skip
# Whole seconds, far enough in the past for any block range, well within the 3650d retention.
BASE_TIME = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
STABLE_WORKLOAD = "podinfo-ga"
CANARY_WORKLOAD = "podinfo-canary"


@dataclass(frozen=True)
class SideProfile:
    """How one workload answers: share of 5xx and a latency distribution as (milliseconds, fraction)."""

    error_ratio: float = 0.0
    # p99 falls inside Istio's (100, 250] bucket, so histogram_quantile interpolates (to 175 ms).
    latencies_ms: tuple[tuple[float, float], ...] = ((20.0, 0.90), (60.0, 0.08), (150.0, 0.02))

    def __post_init__(self) -> None:
        total = sum(fraction for _, fraction in self.latencies_ms)
        if abs(total - 1.0) > 1e-9 or not 0 <= self.error_ratio <= 1:
            raise ValueError(f"latency fractions must sum to 1 and error_ratio be in [0, 1]: {self}")

    def slower(self, factor: float) -> SideProfile:
        """The same distribution with every latency multiplied by `factor`."""
        return SideProfile(self.error_ratio, tuple((ms * factor, f) for ms, f in self.latencies_ms))

    def below(self, le: float) -> float:
        """Fraction of requests at or under `le` milliseconds."""
        return sum(fraction for ms, fraction in self.latencies_ms if ms <= le)


HEALTHY = SideProfile()


@dataclass(frozen=True)
class Scenario:
    """Traffic of one namespace from `start` for `duration`, one sample per series every `interval`.

    `request_rate` is requests per second to both workloads together; `canary_share` is piecewise
    constant (offset in seconds from start, percent to the canary). In `gaps` (offset ranges, seconds,
    inclusive) no samples are written, as if scrapes were missed; counters still advance.
    """

    namespace: str = "test"
    start: datetime = BASE_TIME
    duration: timedelta = timedelta(minutes=30)
    interval: timedelta = timedelta(seconds=15)
    request_rate: float = 20.0
    canary_share: tuple[tuple[float, float], ...] = ((0.0, 10.0),)
    stable: SideProfile = HEALTHY
    canary: SideProfile = HEALTHY
    gaps: tuple[tuple[float, float], ...] = ()
    # Later canary behaviour, e.g. a new image from minute 20: ((1200.0, HEALTHY),); (offset s, profile).
    canary_changes: tuple[tuple[float, SideProfile], ...] = ()
    stable_workload: str = STABLE_WORKLOAD
    canary_workload: str = CANARY_WORKLOAD

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    def at(self, offset: timedelta) -> datetime:
        """The moment `offset` after the scenario's start."""
        return self.start + offset

    def share_at(self, offset_seconds: float) -> float:
        share = 0.0
        for since, percent in self.canary_share:
            if offset_seconds >= since:
                share = percent
        return share

    def canary_at(self, offset_seconds: float) -> SideProfile:
        profile = self.canary
        for since, later in self.canary_changes:
            if offset_seconds >= since:
                profile = later
        return profile

    def in_gap(self, offset_seconds: float) -> bool:
        return any(low <= offset_seconds <= high for low, high in self.gaps)


def _labels(scenario: Scenario, workload: str, reporter: str, **extra: str) -> str:
    pairs = {
        "reporter": reporter,
        "source_workload": "istio-ingressgateway",
        "destination_workload": workload,
        "destination_workload_namespace": scenario.namespace,
        "destination_service": f"podinfo.{scenario.namespace}.svc.cluster.local",
        **extra,
    }
    return "{" + ",".join(f'{key}="{value}"' for key, value in pairs.items()) + "}"


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass
class _Series:
    name: str
    labels: str
    points: list[tuple[int, float]] = field(default_factory=list)


def build_series(scenario: Scenario) -> list[_Series]:
    """Every series of `scenario`, each with its samples in ascending time order."""
    step = int(scenario.interval.total_seconds())
    count = int(scenario.duration.total_seconds()) // step
    start = int(scenario.start.timestamp())
    bounds = (*ISTIO_BUCKETS_MS, float("inf"))
    out: list[_Series] = []
    for workload, is_canary in ((scenario.stable_workload, False), (scenario.canary_workload, True)):
        ok = _Series("istio_requests_total", _labels(scenario, workload, "destination", response_code="200"))
        bad = _Series("istio_requests_total", _labels(scenario, workload, "destination", response_code="503"))
        # The source-reporter view counts the same calls differently; queries must pick `reporter`.
        src = _Series("istio_requests_total", _labels(scenario, workload, "source", response_code="200"))
        buckets = [
            _Series(
                "istio_request_duration_milliseconds_bucket",
                _labels(scenario, workload, "destination", le=_le(le)),
            )
            for le in bounds
        ]
        total = _Series("istio_request_duration_milliseconds_count", _labels(scenario, workload, "destination"))
        summed = _Series("istio_request_duration_milliseconds_sum", _labels(scenario, workload, "destination"))
        # Counters: calls, 2xx, 5xx, one per bucket, latency sum; advanced interval by interval.
        calls = good = failed = latency_sum = 0.0
        in_bucket = [0.0] * len(bounds)
        for k in range(count + 1):
            offset = k * step
            if k > 0:
                share = scenario.share_at(offset - step)
                profile = scenario.canary_at(offset - step) if is_canary else scenario.stable
                added = scenario.request_rate * (share if is_canary else 100.0 - share) / 100.0 * step
                calls += added
                good += added * (1 - profile.error_ratio)
                failed += added * profile.error_ratio
                latency_sum += added * sum(ms * fraction for ms, fraction in profile.latencies_ms)
                for i, le in enumerate(bounds):
                    in_bucket[i] += added * (1.0 if le == float("inf") else profile.below(le))
            if scenario.in_gap(offset):
                continue
            stamp = start + offset
            ok.points.append((stamp, good))
            bad.points.append((stamp, failed))
            src.points.append((stamp, calls * 2))
            for series, value in zip(buckets, in_bucket, strict=True):
                series.points.append((stamp, value))
            total.points.append((stamp, calls))
            summed.points.append((stamp, latency_sum))
        # Istio creates a response_code series only once such a response happened.
        out += [ok, *([bad] if failed > 0 else []), src, *buckets, total, summed]
    return out


def write_openmetrics(scenarios: tuple[Scenario, ...], stream: IO[str]) -> int:
    """Write `scenarios` as one OpenMetrics exposition; return the number of samples written."""
    series = [s for scenario in scenarios for s in build_series(scenario)]
    stream.write(istio_openmetrics((item.name, item.labels, item.points) for item in series))
    return sum(len(item.points) for item in series)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    """A running `prometheus` over backfilled data; stop it with `stop()` (or use it as a context manager)."""

    url: str
    data_dir: Path
    scenarios: tuple[Scenario, ...]
    samples: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def scenario(self, namespace: str) -> Scenario:
        return next(s for s in self.scenarios if s.namespace == namespace)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(path).exists():
        raise RuntimeError(f"{name} is not installed (run `make system-deps`)")
    return path


def backfill(scenarios: tuple[Scenario, ...], work_dir: Path) -> tuple[Path, int]:
    """Write the OpenMetrics file and create TSDB blocks from it; return the data dir and sample count."""
    source = work_dir / "samples.om.txt"
    data_dir = work_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with source.open("w", encoding="utf-8") as stream:
        samples = write_openmetrics(scenarios, stream)
    result = subprocess.run(
        [_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool failed: {result.stderr.strip()[-500:]}")
    return data_dir, samples


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log_path.read_text(errors='replace')[-800:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"prometheus not ready after {timeout}s")


def start_prometheus(work_dir: Path, *scenarios: Scenario, ready_timeout: float = 30) -> PrometheusServer:
    """Backfill `scenarios` into `work_dir` and start a Prometheus over them on a free loopback port."""
    if not scenarios:
        scenarios = (Scenario(),)
    data_dir, samples = backfill(scenarios, work_dir)
    config = work_dir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work_dir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                _tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=3650d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work_dir,
        )
    server = PrometheusServer(url, data_dir, scenarios, samples, process, log_path)
    try:
        _wait_ready(url, process, log_path, ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def scenario_times(scenario: Scenario, every: timedelta) -> Iterator[datetime]:
    """Moments from the scenario's start to its end, `every` apart (for cycle-by-cycle scenario tests)."""
    moment = scenario.start
    while moment <= scenario.end:
        yield moment
        moment += every
