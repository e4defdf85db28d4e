"""The daemon's overheads: start, a /metrics scrape with many policies, stop, and secret masking per line."""

from __future__ import annotations

import time
import urllib.request

from gitbot.config import Policy
from gitbot.logs import SecretMasker
from gitbot.service import CycleSummary, Service


def _policy(name: str) -> Policy:
    return Policy.model_validate(
        {
            "apiVersion": "gitbot.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": name},
            "spec": {"git": {"url": "http://127.0.0.1:1/r.git"}, "schedule": {"interval": 3600}},
        }
    )


def main() -> None:
    ran: set[str] = set()

    def runner(policy: Policy) -> CycleSummary:
        ran.add(policy.name)
        return CycleSummary(policy.name, "changed", {"image-update": 1}, 0.3, {"podinfo": (10, "pass")})

    policies = [_policy(f"policy-{i}") for i in range(20)]
    service = Service(policies, runner, port=0, host="127.0.0.1", jitter=0)
    started = time.perf_counter()
    service.start()
    print(f"start with {len(policies)} policies: {(time.perf_counter() - started) * 1000:.1f} ms")
    deadline = time.monotonic() + 10
    while len(ran) < len(policies):
        if time.monotonic() > deadline:
            raise SystemExit("cycles did not run")
        time.sleep(0.01)
    url = f"http://127.0.0.1:{service.port}/metrics"
    scrapes = 200
    started = time.perf_counter()
    for _ in range(scrapes):
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
    per_scrape = (time.perf_counter() - started) / scrapes * 1000
    print(f"/metrics scrape: {per_scrape:.2f} ms for {len(body)} bytes")
    started = time.perf_counter()
    service.stop()
    print(f"stop (no running cycle): {(time.perf_counter() - started) * 1000:.1f} ms")

    masker = SecretMasker({f"secret-{i}-abcdefghijkl" for i in range(7)})
    line = "cycle policy=production outcome=changed duration_seconds=1.2 error='push rejected by remote' " * 3
    rounds = 100_000
    started = time.perf_counter()
    for _ in range(rounds):
        masker.mask(line)
    print(f"mask a {len(line)}-character line with 7 secrets: {(time.perf_counter() - started) / rounds * 1e6:.2f} us")
