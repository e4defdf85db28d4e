"""Scanning generated repositories of 1,000 and 10,000 manifests: cold (every file parsed, libyaml
locating), warm from the on-disk cache (a restarted process), warm in memory, and cold with ruamel.yaml
alone for comparison; prints files/s, lines/s and the warm times."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from gitbot.manifests import ScanCache, may_hold_targets, scan_paths, scan_text

DEPLOYMENT = """\
# {app} workload
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  namespace: team-{team}
  labels: {{app: {app}, tier: backend}}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {app}
  template:
    metadata:
      labels:
        app: {app}
    spec:
      initContainers:
        - name: migrate
          image: "registry.example/{app}-migrate:{tag}"
      containers:
        - name: {app}
          image: registry.example/{app}:{tag} # {{"$imagepolicy": "team-{team}:{app}"}}
          ports:
            - containerPort: 8080
          resources:
            limits: {{cpu: 500m, memory: 256Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: {app}
  namespace: team-{team}
spec:
  selector:
    app: {app}
  ports:
    - port: 80
      targetPort: 8080
"""

VIRTUAL_SERVICE = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: {app}
  namespace: team-{team}
spec:
  hosts: [{app}]
  http:
    - route:
        - destination: {{host: {app}, subset: ga}}
          weight: {ga}
        - destination: {{host: {app}, subset: canary}}
          weight: {canary}
"""

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {app}-settings
  namespace: team-{team}
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "a,b,c"
  TIMEOUT: "30s"
"""


def generate(root: Path, count: int, seed: int = 7) -> int:
    """Write `count` manifests under `root` (a mix of workloads, routes and config); returns total lines."""
    rng = random.Random(seed)
    lines = 0
    for i in range(count):
        app = f"svc{i:05d}"
        team = i % 40
        choice = i % 10
        if choice < 5:
            text = DEPLOYMENT.format(app=app, team=team, replicas=rng.randint(1, 5), tag=f"1.{i % 30}.{i % 7}")
        elif choice < 7:
            canary = rng.choice([0, 10, 25, 50])
            text = VIRTUAL_SERVICE.format(app=app, team=team, ga=100 - canary, canary=canary)
        else:
            text = CONFIG_MAP.format(app=app, team=team)
        path = root / f"team-{team:02d}" / f"{app}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        lines += text.count("\n")
    return lines


def measure(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        cache_dir = Path(tmp) / "cache"
        lines = generate(repo, count)
        start = time.perf_counter()
        cache = ScanCache(cache_dir)
        cold = scan_paths(repo, ["."], cache=cache)
        cache.save()
        cold_s = time.perf_counter() - start

        start = time.perf_counter()
        restarted = ScanCache(cache_dir)
        warm_disk = scan_paths(repo, ["."], cache=restarted)
        disk_s = time.perf_counter() - start

        start = time.perf_counter()
        warm_memory = scan_paths(repo, ["."], cache=restarted)
        memory_s = time.perf_counter() - start

        assert cold == warm_disk == warm_memory
        start = time.perf_counter()
        for path in sorted(repo.rglob("*.yaml")):
            data = path.read_bytes()
            if may_hold_targets(data):
                scan_text(path.relative_to(repo).as_posix(), data.decode("utf-8"), fast=False)
        ruamel_s = time.perf_counter() - start
        print(
            f"{count:>6} manifests, {lines} lines, {len(cold)} targets: "
            f"cold {cold_s:.2f} s ({count / cold_s:,.0f} files/s, {lines / cold_s:,.0f} lines/s); "
            f"warm from disk cache {disk_s:.3f} s "
            f"({count / disk_s:,.0f} files/s, {lines / disk_s:,.0f} lines/s); "
            f"warm in memory {memory_s:.3f} s; "
            f"cold with ruamel.yaml alone {ruamel_s:.2f} s ({lines / ruamel_s:,.0f} lines/s)"
        )


def main() -> None:
    for count in (1_000, 10_000):
        measure(count)


if __name__ == "__main__":
    main()
