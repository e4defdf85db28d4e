"""A simulated cluster for the demo: what Flux applied, and the Istio metrics that traffic would produce.

Owns the traffic model: requests to `podinfo-ga` and `podinfo-canary` at a fixed rate, the canary's share
equal to the weight last applied from git, and a latency profile per canary version (the slow patch answers
about 2.5 times slower at p99 than GA). It produces Istio-shaped samples (`istio_requests_total`,
`istio_request_duration_milliseconds_*` with the default Istio buckets) every scrape interval and renders
them as OpenMetrics text or feeds them to an in-memory store. Pure apart from the caller's sink: it reads no
git and starts no server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gitbot.demo.localservers import istio_openmetrics
from gitbot.manifests import scan_text

# Istio's default buckets for istio_request_duration_milliseconds.
ISTIO_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
)  # fmt: skip
NAMESPACE = "test"
STABLE = "podinfo-ga"
CANARY = "podinfo-canary"


@dataclass(frozen=True)
class Profile:
    """How a version answers: share of 5xx and latency as (milliseconds, fraction of requests) pairs."""

    error_ratio: float
    latencies_ms: tuple[tuple[float, float], ...]

    def below(self, le: float) -> float:
        return sum(fraction for ms, fraction in self.latencies_ms if ms <= le)

    def mean_ms(self) -> float:
        return sum(ms * fraction for ms, fraction in self.latencies_ms)


# p99 falls in Istio's (100, 250] bucket: about 175 ms.
HEALTHY = Profile(0.002, ((20.0, 0.90), (60.0, 0.08), (150.0, 0.02)))
# p99 falls in the (250, 500] bucket: about 440 ms, 2.5 times the healthy one.
SLOW = Profile(0.002, ((60.0, 0.90), (200.0, 0.06), (450.0, 0.04)))


@dataclass(frozen=True)
class Applied:
    """What the cluster runs: the canary weight of the route and the canary's image tag."""

    weight: int
    canary_tag: str


def applied_state(files: Mapping[str, str], route: str, canary_workload: str = CANARY) -> Applied:
    """Read the canary weight of `route` (`VirtualService/ns/name`) and the canary's tag from manifest texts."""
    weight: int | None = None
    tag = ""
    for name, text in files.items():
        for target in scan_text(name, text):
            if (
                target.kind == "weight"
                and target.resource == route
                and target.backend is not None
                and target.backend.get("subset") == "canary"
            ):
                weight = int(target.value)
            if target.kind == "image" and target.resource.endswith(f"/{canary_workload}"):
                tag = target.value.rsplit(":", 1)[-1]
    if weight is None:
        raise ValueError(f"no canary weight of {route} in the applied manifests")
    return Applied(weight, tag)


Sink = Callable[[str, Mapping[str, str], float, float], None]


@dataclass
class _Counters:
    ok: float = 0.0
    failed: float = 0.0
    latency_sum: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * (len(ISTIO_BUCKETS_MS) + 1))

    @property
    def calls(self) -> float:
        return self.ok + self.failed


@dataclass
class SimulatedCluster:
    """Traffic from `start`, one sample per series every `scrape`, shaped by what was applied when.

    `profiles` maps a canary tag to its behaviour (default HEALTHY); GA is always HEALTHY.
    """

    start: datetime
    request_rate: float = 20.0
    scrape: timedelta = timedelta(seconds=15)
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    applied: Applied = field(default_factory=lambda: Applied(0, ""))
    _now: datetime | None = None
    _counters: dict[str, _Counters] = field(default_factory=lambda: {STABLE: _Counters(), CANARY: _Counters()})
    history: list[tuple[str, dict[str, str], float, float]] = field(default_factory=list)

    def apply(self, state: Applied) -> None:
        """Flux applied new manifests: traffic from now on follows `state`."""
        self.applied = state

    def run_until(self, until: datetime, sink: Sink | None = None) -> int:
        """Produce the samples up to `until` (inclusive); pass each to `sink`; return how many."""
        moment = self.start if self._now is None else self._now + self.scrape
        step = self.scrape.total_seconds()
        written = 0
        while moment <= until:
            if self._now is not None:
                self._serve(step)
            for sample in self._samples(moment.timestamp()):
                self.history.append(sample)
                if sink is not None:
                    sink(*sample)
                written += 1
            self._now = moment
            moment += self.scrape
        return written

    def _serve(self, seconds: float) -> None:
        share = self.applied.weight / 100.0
        for workload, fraction, profile in (
            (STABLE, 1.0 - share, HEALTHY),
            (CANARY, share, self.profiles.get(self.applied.canary_tag, HEALTHY)),
        ):
            count = self._counters[workload]
            added = self.request_rate * fraction * seconds
            count.ok += added * (1 - profile.error_ratio)
            count.failed += added * profile.error_ratio
            count.latency_sum += added * profile.mean_ms()
            for index, le in enumerate((*ISTIO_BUCKETS_MS, float("inf"))):
                count.buckets[index] += added * (1.0 if le == float("inf") else profile.below(le))

    def _samples(self, at: float) -> Iterator[tuple[str, dict[str, str], float, float]]:
        for workload, count in self._counters.items():
            base = {
                "reporter": "destination",
                "source_workload": "istio-ingressgateway",
                "destination_workload": workload,
                "destination_workload_namespace": NAMESPACE,
                "destination_service": f"podinfo.{NAMESPACE}.svc.cluster.local",
            }
            yield "istio_requests_total", {**base, "response_code": "200"}, at, count.ok
            yield "istio_requests_total", {**base, "response_code": "503"}, at, count.failed
            for index, le in enumerate((*ISTIO_BUCKETS_MS, float("inf"))):
                bound = "+Inf" if le == float("inf") else repr(float(le))
                yield "istio_request_duration_milliseconds_bucket", {**base, "le": bound}, at, count.buckets[index]
            yield "istio_request_duration_milliseconds_count", base, at, count.calls
            yield "istio_request_duration_milliseconds_sum", base, at, count.latency_sum

    def openmetrics(self) -> str:
        """Every sample so far as one OpenMetrics exposition (series contiguous, seconds timestamps)."""
        by_series: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for name, labels, at, value in self.history:
            rendered = "{" + ",".join(f'{key}="{val}"' for key, val in labels.items()) + "}"
            by_series.setdefault((name, rendered), []).append((at, value))
        return istio_openmetrics((name, selector, points) for (name, selector), points in by_series.items())
