"""Whole-tree golden tests: one reconcile cycle over a repository's `before` tree must leave exactly `after`.

Each case directory holds `before/` (the repository's files), `policy.yaml` (its git URL written `GIT_URL`),
`tags.yaml` (the tags each image repository lists), `after/` (the reviewed tree after one delivered cycle,
compared byte for byte, file set included), `commits.txt` (the subjects of the commits that cycle made,
oldest first), `problems.txt` (the files and policy lines the cycle reported and went on without) and
`second.txt` (what a second cycle at the same moment plans: nothing, or a canary's next step). The cycle is
the real one: a bare git repository on disk, the policy loaded from its file, the built-in registry and
metrics sources of `gitbot demo` and a clock that does not move. Files taken from the shared corpus keep
their origin and licence in the case's `SOURCES.tsv`.

`GITBOT_UPDATE_GOLDEN_TREES=1` rewrites `after/` and the three lists from what the cycle did, for review.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitbot.config import load_policy
from gitbot.cycle import Deps, run_cycle
from gitbot.demo.builtin import ManualClock, MemoryMetrics, MemoryRegistry
from gitbot.demo.localgit import ClockedGitWorkspace, init_bare_repository
from gitbot.domain import Author

HERE = Path(__file__).resolve().parent
CASES = sorted(p.name for p in HERE.iterdir() if (p / "policy.yaml").is_file())
BRANCH = "main"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
UPDATE = os.environ.get("GITBOT_UPDATE_GOLDEN_TREES") == "1"


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below `root`, by its relative POSIX path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def git(bare: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=bare, capture_output=True, check=True).stdout


def branch_files(bare: Path) -> dict[str, bytes]:
    """Every file of the branch's head in the bare repository, by path."""
    names = git(bare, "ls-tree", "-r", "-z", "--name-only", f"refs/heads/{BRANCH}").split(b"\0")
    return {name.decode(): git(bare, "show", f"refs/heads/{BRANCH}:{name.decode()}") for name in names if name}


def subjects_since(bare: Path, seed: str) -> list[str]:
    out = git(bare, "log", "--reverse", "--format=%s", f"{seed}..refs/heads/{BRANCH}").decode()
    return out.splitlines()


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    if root.exists():
        shutil.rmtree(root)
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def test_every_kind_of_tree_has_a_case() -> None:
    assert {"podinfo-canary", "kustomize-overlay", "helmrelease", "httproute", "problem-files", "broken-files"} <= set(
        CASES
    )


@pytest.mark.parametrize("case", CASES)
def test_one_cycle_turns_before_into_after(case: str, tmp_path: Path) -> None:
    folder = HERE / case
    before = files_under(folder / "before")
    bare = tmp_path / "config.git"
    seed = init_bare_repository(
        bare,
        BRANCH,
        {name: data.decode("utf-8") for name, data in before.items()},
        "Seed",
        Author("seed", "seed@example.invalid"),
        NOW - timedelta(hours=1),
    )
    assert branch_files(bare) == before, "the seed commit must hold the before tree byte for byte"
    policy_file = tmp_path / "policies" / "policy.yaml"
    policy_file.parent.mkdir()
    policy_file.write_text(
        (folder / "policy.yaml").read_text(encoding="utf-8").replace("GIT_URL", str(bare)), encoding="utf-8"
    )
    policy = load_policy(policy_file)
    tags = YAML(typ="safe").load((folder / "tags.yaml").read_text(encoding="utf-8"))
    clock = ManualClock(NOW)
    deps = Deps(
        workspace=ClockedGitWorkspace(
            str(bare), BRANCH, tmp_path / "cache", author=Author("gitbot", "gitbot@example.invalid"), clock=clock
        ),
        registry=MemoryRegistry({image: [str(tag) for tag in listed] for image, listed in tags.items()}),
        clock=clock,
        metrics=lambda _canary: MemoryMetrics(),
    )

    result = run_cycle(policy, deps, deliver=True)
    after, subjects = branch_files(bare), subjects_since(bare, seed)
    problems = [str(problem).replace(str(policy_file), "policy.yaml") for problem in result.problems]
    if UPDATE:
        write_tree(folder / "after", after)
        (folder / "commits.txt").write_text("".join(f"{s}\n" for s in subjects), encoding="utf-8")
        (folder / "problems.txt").write_text("".join(f"{p}\n" for p in problems), encoding="utf-8")
    assert after == files_under(folder / "after")
    assert subjects == (folder / "commits.txt").read_text(encoding="utf-8").splitlines()
    assert problems == (folder / "problems.txt").read_text(encoding="utf-8").splitlines()

    # A second cycle at the same moment repeats and undoes nothing; only a canary may take its next step.
    plans = run_cycle(policy, deps, deliver=False).plans
    again = [plan.subject for plan in plans]
    if UPDATE:
        (folder / "second.txt").write_text("".join(f"{s}\n" for s in again), encoding="utf-8")
    assert again == (folder / "second.txt").read_text(encoding="utf-8").splitlines()
    assert all(plan.action == "canary-step" for plan in plans)
