"""A cycle reads a manifest's text only when it needs it: with every blob in the scan cache, a cycle that
changes nothing reads none, and one that edits files reads exactly those holding targets, in one batch. And it
binds its targets to their image policies once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitbot import cycle, planner
from gitbot.config import Policy, load_policy
from gitbot.cycle import Deps, run_cycle
from gitbot.demo.builtin import ManualClock
from gitbot.domain import CommitInfo, Target
from gitbot.manifests import ScanCache
from gitbot.ports import TreeFile

MANIFEST = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}, namespace: prod}}\n"
    "spec:\n  template:\n    spec:\n      containers:\n"
    '        - name: app\n          image: registry.example/app:1.0.0 # {{"$imagepolicy": "prod:app"}}\n'
)


@dataclass
class CountingCheckout:
    """A checkout of fixed files with their blob ids (as git's objects give them), recording each read."""

    texts: dict[str, bytes]
    reads: list[list[str]] = field(default_factory=list)
    head: str = "0" * 40

    def log(self, max_count: int = 500) -> list[CommitInfo]:
        return []

    def files(self, paths: Sequence[str]) -> list[TreeFile]:
        return [
            TreeFile(path, hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest(), len(data))
            for path, data in sorted(self.texts.items())
            if any(path.startswith(f"{prefix}/") for prefix in paths)
        ]

    def read(self, files: Sequence[str]) -> dict[str, bytes]:
        self.reads.append(list(files))
        return {file: self.texts[file] for file in files}


@dataclass
class Workspace:
    checkout_: CountingCheckout

    @contextmanager
    def checkout(self) -> Iterator[Any]:
        yield self.checkout_


@dataclass
class Registry:
    tags: list[str]

    def list_tags(self, image: str) -> Sequence[str]:
        return self.tags


def policy_of(tmp_path: Path) -> Policy:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
        "  git: {url: https://git.example.test/c.git, paths: [apps]}\n"
        "  images:\n    - {name: app, repository: registry.example/app, filter: '1.*'}\n",
        encoding="utf-8",
    )
    return load_policy(path)


def test_a_cycle_reads_only_the_texts_it_edits_once_the_scan_cache_knows_every_file(tmp_path: Path) -> None:
    texts = {f"apps/d{i}.yaml": MANIFEST.format(i=i).encode() for i in range(5)}
    texts["apps/notes.yaml"] = b"no: images here\n"
    checkout = CountingCheckout(texts)
    registry = Registry(["1.0.0"])
    deps = Deps(
        workspace=Workspace(checkout),
        registry=registry,
        clock=ManualClock(datetime(2026, 12, 1, tzinfo=UTC)),
        scan_cache=ScanCache(),
    )
    policy = policy_of(tmp_path)

    first = run_cycle(policy, deps, deliver=False)
    assert first.plans == ()
    # The scan reads every file the cache does not know, once.
    assert [files for files in checkout.reads if files] == [sorted(texts)]

    checkout.reads.clear()
    again = run_cycle(policy, deps, deliver=False)
    assert again.plans == ()
    assert checkout.reads == []  # nothing changes: no text is needed, and nothing is asked for

    registry.tags.append("1.1.0")
    edited = run_cycle(policy, deps, deliver=False)
    assert [plan.name for plan in edited.plans] == ["app"]
    assert edited.diff.count("+++ b/apps/d") == 5
    assert [files for files in checkout.reads if files] == [[f"apps/d{i}.yaml" for i in range(5)]]


def test_a_cycle_binds_its_targets_to_their_image_policies_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = {f"apps/d{i}.yaml": MANIFEST.format(i=i).encode() for i in range(3)}
    deps = Deps(
        workspace=Workspace(CountingCheckout(texts)),
        registry=Registry(["1.0.0", "1.1.0"]),
        clock=ManualClock(datetime(2026, 12, 1, tzinfo=UTC)),
    )
    calls: list[int] = []
    bind = planner.bind_images

    def counting(policy: Policy, targets: Sequence[Target]) -> list[planner.Binding]:
        calls.append(len(targets))
        return bind(policy, targets)

    for module in (planner, cycle):
        monkeypatch.setattr(module, "bind_images", counting)
    result = run_cycle(policy_of(tmp_path), deps, deliver=False)
    assert [plan.name for plan in result.plans] == ["app"]
    assert calls == [3]
