"""A cycle's unified diff is made when it is first asked for (`plan --diff`), not by every cycle: comparing
thousands of changed files takes seconds that a cycle which never shows its diff should not spend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitbot import cycle
from gitbot.config import load_policy
from gitbot.cycle import Deps, run_cycle
from gitbot.demo.builtin import ManualClock
from gitbot.domain import Plan
from tests.support.directory import DirectoryWorkspace


class Registry:
    def list_tags(self, image: str) -> Sequence[str]:
        return ["1.0.0", "1.1.0"]


def test_the_diff_is_made_once_and_only_when_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "apps").mkdir(parents=True)
    for i in range(3):
        (repo / "apps" / f"d{i}.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}, namespace: prod}}\n"
            "spec:\n  template:\n    spec:\n      containers:\n"
            '        - name: app\n          image: registry.example/app:1.0.0 # {"$imagepolicy": "prod:app"}\n',
            encoding="utf-8",
        )
    policy_path = tmp_path / "p.yaml"
    policy_path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
        "  git: {url: https://git.example.test/c.git, paths: [apps]}\n"
        "  images:\n"
        "    - {name: app, repository: registry.example/app, filter: '1.*'}\n",
        encoding="utf-8",
    )
    made: list[int] = []
    original = cycle.unified_diff

    def counted(root: Path | None, plans: Sequence[Plan], **kwargs: object) -> str:
        made.append(len(plans))
        return original(root, plans, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cycle, "unified_diff", counted)
    deps = Deps(
        workspace=DirectoryWorkspace(repo), registry=Registry(), clock=ManualClock(datetime(2026, 12, 1, tzinfo=UTC))
    )

    result = run_cycle(load_policy(policy_path), deps, deliver=False)

    assert [plan.name for plan in result.plans] == ["app"]
    assert made == []
    lines = result.diff.splitlines()
    assert made == [1]
    assert [line for line in lines if line.startswith("+++")] == [f"+++ b/apps/d{i}.yaml" for i in range(3)]
    assert '+          image: registry.example/app:1.1.0 # {"$imagepolicy": "prod:app"}' in lines
    assert result.diff.splitlines() == lines
    assert made == [1]
