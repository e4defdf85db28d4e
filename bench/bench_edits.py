"""Planning image updates over generated repositories of 1,000 and 10,000 manifests, two images each (one
bound by a `$imagepolicy` marker, one by resource and container), every reference moving to a newer tag.
Plan only, in process, no servers: prints YAML parses per changed file (locating and confirming) and the
time per manifest, for one commit per image (chained edits) and for one commit of every image."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitbot import yamlio
from gitbot.config import load_policy
from gitbot.cycle import Deps, run_cycle
from gitbot.demo.builtin import ManualClock
from tests.support.directory import DirectoryWorkspace

NOW = datetime(2026, 12, 1, tzinfo=UTC)

IMAGES = 10
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{team}
  labels: {{app: app-{i}}}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: app-{i}
  template:
    metadata:
      labels:
        app: app-{i}
    spec:
      containers:
        - name: app
          image: registry.example/img{main}:1.0.0 # {{"$imagepolicy": "team-{team}:img{main}"}}
          ports:
            - containerPort: 8080
        - name: sidecar
          image: "registry.example/img{side}:1.0.0"
          resources:
            limits: {{cpu: 100m, memory: 64Mi}}
"""


def _team(i: int) -> int:
    return i % 50


def _side(i: int) -> int:
    return (i + IMAGES // 2) % IMAGES


def generate(root: Path, count: int, group: str) -> Path:
    """`count` manifests under `root/repo/clusters` and a policy binding all of them; the policy's path."""
    for i in range(count):
        folder = root / "repo" / "clusters" / f"team-{_team(i)}"
        folder.mkdir(parents=True, exist_ok=True)
        text = MANIFEST.format(i=i, team=_team(i), main=i % IMAGES, side=_side(i))
        (folder / f"app-{i}.yaml").write_text(text, encoding="utf-8")
    images = []
    for k in range(IMAGES):
        images.append(f"    - name: img{k}\n      repository: registry.example/img{k}\n      filter: '1.*'\n")
        resources = [i for i in range(count) if _side(i) == k]
        images.append("      targets:\n" if resources else "      targets: []\n")
        images += [
            f"        - {{resource: Deployment/team-{_team(i)}/app-{i}, container: sidecar}}\n" for i in resources
        ]
    policy = root / "bench.yaml"
    policy.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: bench}\nspec:\n"
        "  git: {url: https://git.example/config.git, paths: [clusters]}\n"
        f"  delivery: {{mode: commit, group: {group}}}\n"
        "  images:\n" + "".join(images),
        encoding="utf-8",
    )
    return policy


class _Registry:
    def list_tags(self, image: str) -> Sequence[str]:
        return ["1.0.0", "1.1.0", "0.9.0"]


@contextmanager
def counting_parses() -> Iterator[Counter[str]]:
    """Counts calls of `yamlio.parse` (ruamel.yaml) and `yamlio.parse_fast` (libyaml) while inside."""
    counts: Counter[str] = Counter()
    originals: dict[str, Callable[..., Any]] = {"parse": yamlio.parse, "parse_fast": yamlio.parse_fast}

    def spy(name: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return originals[name](*args, **kwargs)

        return wrapper

    for name in originals:
        setattr(yamlio, name, spy(name))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(yamlio, name, original)


def bench(count: int, group: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy = load_policy(generate(root, count, group))
        deps = Deps(
            workspace=DirectoryWorkspace(root / "repo"),
            registry=_Registry(),
            clock=ManualClock(datetime(2026, 12, 1, tzinfo=UTC)),
        )
        with counting_parses() as counts:
            started, cpu = time.perf_counter(), time.process_time()
            result = run_cycle(policy, deps, deliver=False)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        changed = {file for plan in result.plans for file, _ in plan.files}
        # Scanning locates every file once with libyaml; what is beyond that is the edits' parsing.
        edit_fast = counts["parse_fast"] - count
        print(
            f"{count:>6} manifests, group {group:<9}: {len(result.plans):>2} plans, {len(changed):>6} files changed, "
            f"parses per changed file: ruamel {counts['parse'] / max(len(changed), 1):.2f}, "
            f"libyaml {edit_fast / max(len(changed), 1):.2f} (+1 scan); "
            f"{seconds:.2f} s ({cpu:.2f} s CPU), {seconds / count * 1e3:.2f} ms per manifest "
            f"({cpu / count * 1e3:.2f} ms CPU)"
        )


def main() -> None:
    for count in (1_000, 10_000):
        for group in ("per-image", "all"):
            bench(count, group)


if __name__ == "__main__":
    main()
