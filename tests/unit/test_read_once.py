"""A cycle opens each manifest once: the planner edits, and the diff starts from, the texts the scan read.
Opens are counted with Python's audit hook for `open` (every file open of the process passes it)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitbot.config import load_policy
from gitbot.cycle import Deps, run_cycle
from gitbot.demo.builtin import ManualClock
from tests.support.directory import DirectoryWorkspace

NOW = datetime(2026, 12, 1, tzinfo=UTC)

_WATCHED: list[tuple[str, Counter[str]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], str | Path):
        root, counts = _WATCHED[-1]
        path = str(args[0])
        if path.startswith(root):
            counts[path[len(root) :]] += 1


sys.addaudithook(_audit)


@contextmanager
def opens_under(root: Path) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    _WATCHED.append((f"{root}/", counts))
    try:
        yield counts
    finally:
        _WATCHED.pop()


class Registry:
    def list_tags(self, image: str) -> Sequence[str]:
        return ["1.0.0", "1.1.0"]


def test_each_manifest_is_opened_once_in_a_cycle_that_edits_it_twice(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "apps").mkdir(parents=True)
    for i in range(5):
        (repo / "apps" / f"d{i}.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}, namespace: prod}}\n"
            "spec:\n  template:\n    spec:\n      containers:\n"
            '        - name: app\n          image: registry.example/app:1.0.0 # {"$imagepolicy": "prod:app"}\n'
            '        - name: side\n          image: registry.example/side:1.0.0 # {"$imagepolicy": "prod:side"}\n',
            encoding="utf-8",
        )
    (repo / "apps" / "notes.yaml").write_text("no: images here\n", encoding="utf-8")
    policy_path = tmp_path / "p.yaml"
    policy_path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
        "  git: {url: https://git.example.test/c.git, paths: [apps]}\n"
        "  images:\n"
        "    - {name: app, repository: registry.example/app, filter: '1.*'}\n"
        "    - {name: side, repository: registry.example/side, filter: '1.*'}\n",
        encoding="utf-8",
    )
    policy = load_policy(policy_path)
    deps = Deps(
        workspace=DirectoryWorkspace(repo), registry=Registry(), clock=ManualClock(datetime(2026, 12, 1, tzinfo=UTC))
    )

    with opens_under(repo) as opens:
        result = run_cycle(policy, deps, deliver=False)

    assert [plan.name for plan in result.plans] == ["app", "side"]
    assert result.diff.count("+++ b/apps/d0.yaml") == 2
    assert opens == Counter({f"apps/d{i}.yaml": 1 for i in range(5)} | {"apps/notes.yaml": 1})
