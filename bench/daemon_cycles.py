"""The daemon's no-change cycles in a process of their own, for `bench_cycle`: a `CycleRunner` built as
`gitbot run` builds it (shared registry clients, request counting), one warm-up cycle, then N cycles timed.

The daemon starts a policy's cycles an interval apart (minutes), so each finds its registry hosts' request
budgets (`registryLimits`) refilled: the cycles here are spaced the time a budget takes to refill, not timed,
so that none waits on a budget the cycle before spent, which no scheduled cycle does.

Prints one line, `DAEMON {json}`: durations, registry requests and outcome of each cycle, the first error,
and the process's RSS after the warm-up cycle and after the last one (and its peak). It imports only gitbot
and the standard library, so the RSS is the daemon's own.

Usage: `python -m bench.daemon_cycles POLICIES_DIR POLICY CYCLES`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from gitbot.commands.compose import SharedAdapters
from gitbot.commands.runner import CycleRunner
from gitbot.config import Policy, find_policy
from gitbot.cycle import Deps
from gitbot.logs import process_masker

# Scheduled cycles are an interval apart, longer than a tag list is cached (half the interval at most), so
# each asks the registry again: tag lists expire at once between these back-to-back cycles.
EXPIRED_AT_ONCE = 1e-6


def rss_mb(field_name: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def refill_seconds(policy: Policy) -> float:
    """How long a registry host's request budget takes to refill from empty (a burst of `concurrency`)."""
    limits = policy.spec.registry_limits
    return limits.concurrency / limits.requests_per_second


def run(policies: Path, name: str, cycles: int) -> dict[str, Any]:
    policy = find_policy(policies, name)
    interval = policy.spec.schedule.interval
    spacing = refill_seconds(policy) if interval is None else min(refill_seconds(policy), interval.total_seconds())
    sent = [0]

    def record(system: str, _outcome: str) -> None:
        if system == "registry":
            sent[0] += 1

    shared = SharedAdapters()

    def build(policy: Policy, **options: Any) -> Deps:
        return shared.build_deps(policy, **{**options, "registry_cache_ttl": EXPIRED_AT_ONCE})

    runner = CycleRunner(
        [policy], env=os.environ, stop=threading.Event(), masker=process_masker(), record_request=record, build=build
    )
    first = runner(policy)
    rss_start = rss_mb("VmRSS")
    durations: list[float] = []
    cpu: list[float] = []
    requests: list[int] = []
    outcomes: Counter[str] = Counter()
    error = first.error or ""
    for _ in range(cycles):
        time.sleep(spacing)
        sent[0] = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = runner(policy)
        durations.append(time.perf_counter() - started)
        # CPU seconds of this process (every thread; git's child processes not included): steadier than wall
        # time on a busy machine.
        cpu.append(time.process_time() - cpu_started)
        requests.append(sent[0])
        outcomes[summary.outcome] += 1
        error = error or summary.error or ""
    return {
        "first": first.outcome,
        "first_seconds": first.duration_seconds,
        "durations": durations,
        "cpu": cpu,
        "requests": requests,
        "outcomes": dict(outcomes),
        "error": error,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_mb("VmRSS"),
        "hwm_mb": rss_mb("VmHWM"),
        "spacing": spacing,
    }


def main() -> None:
    policies, name, cycles = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("DAEMON " + json.dumps(run(Path(policies), name, cycles)))


if __name__ == "__main__":
    main()
