"""The canary judge under continuous monitoring: false alarms of identical canaries, time to catch worse ones.

Simulated canaries (fixed seed) take 10% of 200-2,000 requests per 5-minute cycle and are judged every
cycle for 50 cycles by two judges:
- sequential: the error-rate and latency sequential checks (alpha 0.05) on the counts since the step;
- fixed: today's windowed thresholds of the README's example (success-rate min 99 and maxDrop 0.5, latency-p99
  maxRatio 1.2, minRequests 100, a 5-minute window: the last cycle).
A/A canaries are like GA (0.5% errors, log-normal latency with a 50 ms median); A/B canaries have twice the
error rate, or every latency 30% longer (p99 +30%). Latency reaches both judges as Istio's histogram buckets.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy.stats import norm

from gitbot.analysis import (
    AnalysisSpec,
    CheckSpec,
    SequentialCounts,
    SideCounts,
    build_queries,
    judge,
    judge_sequential,
)
from gitbot.sequential import histogram_quantile

SEED = 20261205
CYCLES = 50
SHARE = 0.10
GA_ERRORS = 0.005
MEDIAN_MS, SIGMA = 50.0, 0.6
BOUNDS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
    3600000, math.inf,
)  # fmt: skip
CYCLE = timedelta(minutes=5)
SINCE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _spec(*checks: CheckSpec) -> AnalysisSpec:
    return AnalysisSpec("bench", "podinfo-ga", "podinfo-canary", CYCLE, 100, checks)


SEQUENTIAL = _spec(CheckSpec("error-rate", alpha=0.05), CheckSpec("latency", alpha=0.05))
FIXED = _spec(CheckSpec("success-rate", min=99, max_drop=0.5), CheckSpec("latency-p99", max_ratio=1.2))
FIXED_KEYS = build_queries(FIXED)
KINDS = {"error-rate": "errors", "latency": "latency", "success-rate": "errors", "latency-p99": "latency"}


def _bucket_probabilities(scale: float) -> np.ndarray:
    finite = np.array(BOUNDS[:-1])
    under = norm.cdf((np.log(finite / scale) - math.log(MEDIAN_MS)) / SIGMA)
    return np.diff(np.concatenate([[0.0], under, [1.0]]))


@dataclass(frozen=True)
class Canary:
    error_rate: float = GA_ERRORS
    latency_scale: float = 1.0


@dataclass
class Detection:
    """The first cycle (1-based) each judge failed each kind of check, and the canary's requests by then."""

    cycle: dict[tuple[str, str], int]
    requests: dict[tuple[str, str], int]


def _cumulative(histogram: np.ndarray) -> tuple[tuple[float, float], ...]:
    return tuple(zip(BOUNDS, (float(x) for x in np.cumsum(histogram)), strict=True))


def _fixed_samples(counts: np.ndarray, hist_c: np.ndarray, hist_g: np.ndarray) -> dict[str, float | None]:
    """What Prometheus would answer today's windowed queries over one cycle's counts."""
    c_req, c_err, g_req, g_err = (float(x) for x in counts)

    def rate(requests: float, errors: float) -> float | None:
        return 100.0 * (1 - errors / requests) if requests else None

    samples = {
        "requests:canary": c_req,
        "requests:stable": g_req,
        "0:success-rate:canary": rate(c_req, c_err),
        "0:success-rate:stable": rate(g_req, g_err),
        "1:latency-p99:canary": histogram_quantile(0.99, _cumulative(hist_c)),
        "1:latency-p99:stable": histogram_quantile(0.99, _cumulative(hist_g)),
    }
    assert set(samples) == set(FIXED_KEYS)
    return samples


def simulate(canary: Canary, rng: np.random.Generator, stop_early: bool) -> Detection:
    """Judge one canary every cycle; with `stop_early`, stop once every check of both judges has failed."""
    ga_p, canary_p = _bucket_probabilities(1.0), _bucket_probabilities(canary.latency_scale)
    total = np.zeros(4)
    hist_c, hist_g = np.zeros(len(BOUNDS)), np.zeros(len(BOUNDS))
    found = Detection({}, {})
    for cycle in range(1, CYCLES + 1):
        requests = int(rng.integers(200, 2001))
        c = int(rng.binomial(requests, SHARE))
        g = requests - c
        window = np.array([c, rng.binomial(c, canary.error_rate), g, rng.binomial(g, GA_ERRORS)], dtype=float)
        window_c, window_g = rng.multinomial(c, canary_p), rng.multinomial(g, ga_p)
        total += window
        hist_c += window_c
        hist_g += window_g
        at = SINCE + cycle * CYCLE
        judged = {
            ("fixed", r.name): r.verdict for r in judge(FIXED, _fixed_samples(window, window_c, window_g), at).checks
        }
        counts: SequentialCounts = {
            "canary": SideCounts(total[0], total[1], _cumulative(hist_c)),
            "stable": SideCounts(total[2], total[3], _cumulative(hist_g)),
        }
        judged |= {("sequential", r.name): r.verdict for r in judge_sequential(SEQUENTIAL, counts, since=SINCE)}
        for (judge_name, check), verdict in judged.items():
            key = (judge_name, KINDS.get(check, ""))
            if verdict == "fail" and key[1] and key not in found.cycle:
                found.cycle[key] = cycle
                found.requests[key] = int(total[0])
        if stop_early and len(found.cycle) == 4:
            break
    return found


def _share(detections: list[Detection], key: tuple[str, str] | None) -> float:
    hits = sum(1 for d in detections if (d.cycle if key is None else key in d.cycle))
    return 100.0 * hits / len(detections)


def _a_a(rng: np.random.Generator, canaries: int) -> None:
    started = time.perf_counter()
    runs = [simulate(Canary(), rng, stop_early=False) for _ in range(canaries)]
    print(f"A/A: {canaries} canaries identical to GA, judged every cycle for {CYCLES} cycles")
    for judge_name in ("sequential", "fixed"):
        errors, latency = _share(runs, (judge_name, "errors")), _share(runs, (judge_name, "latency"))
        either = 100.0 * sum(1 for d in runs if any(k[0] == judge_name for k in d.cycle)) / len(runs)
        print(
            f"  {judge_name:<10} falsely failed: {either:5.1f}% "
            f"(error checks {errors:5.1f}%, latency checks {latency:5.1f}%)"
        )
    print(f"  ({time.perf_counter() - started:.1f} s)")


def _a_b(rng: np.random.Generator, canaries: int, label: str, canary: Canary, kind: str) -> None:
    runs = [simulate(canary, rng, stop_early=True) for _ in range(canaries)]
    print(f"A/B: {canaries} canaries with {label}")
    for judge_name in ("sequential", "fixed"):
        key = (judge_name, kind)
        cycles = [d.cycle[key] for d in runs if key in d.cycle]
        requests = [d.requests[key] for d in runs if key in d.cycle]
        never = 100.0 - _share(runs, key)
        median = (
            f"median {statistics.median(requests):6.0f} canary requests, {statistics.median(cycles):4.1f} cycles"
            if cycles
            else "never detected"
        )
        print(f"  {judge_name:<10} {median}; never detected in {CYCLES} cycles: {never:5.1f}%")
    print("  (the fixed judge also fails identical canaries, see A/A: its early failures are mostly noise)")


def main(canaries: int = 1000) -> None:
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}; GA 0.5% errors, canary share {SHARE:.0%}, 200-2,000 requests per cycle")
    _a_a(rng, canaries)
    _a_b(rng, canaries, "twice GA's error rate (1%)", Canary(error_rate=2 * GA_ERRORS), "errors")
    _a_b(rng, canaries, "every latency 30% longer (p99 +30%)", Canary(latency_scale=1.3), "latency")


if __name__ == "__main__":
    main()
