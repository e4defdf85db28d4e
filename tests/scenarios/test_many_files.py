"""Thousands of manifests changed in one commit, on the real git server: the paths and the message reach git
through files, not the argument list (which overflowed: "Argument list too long"), and the message lists a
bounded number of changes and says how many more there are."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from gitbot.cycle import run_cycle
from gitbot.messages import CHANGES_IN_MESSAGE
from tests.scenarios.conftest import PATH, POLICY, World, WorldFactory

pytestmark = pytest.mark.real

MANY = 5_200
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: bulk
spec:
  template:
    spec:
      containers:
        - name: app
          image: {image}:0.1.0 # {{"$imagepolicy": "bulk:bulk"}}
"""


def _file(i: int) -> str:
    # Long folder names, as real repositories have: the path list alone passes 128 KiB.
    return f"{PATH}/generated/team-{i % 40:02d}-workloads-of-the-example-organisation/app-{i}.yaml"


def commit_many(world: World, count: int) -> None:
    """Commit `count` generated manifests on main in the server's repository, as a person would push them."""
    bare = world.git.repo_path(world.repo)
    with tempfile.TemporaryDirectory(prefix="many-") as tmp:
        work = Path(tmp) / "work"
        env = {
            **os.environ,
            "GIT_DIR": str(bare),
            "GIT_WORK_TREE": str(work),
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
            "GIT_AUTHOR_NAME": "Seed Author",
            "GIT_AUTHOR_EMAIL": "seed@example.test",
            "GIT_COMMITTER_NAME": "Seed Author",
            "GIT_COMMITTER_EMAIL": "seed@example.test",
        }
        for i in range(count):
            path = work / _file(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(MANIFEST.format(i=i, image=world.image), encoding="utf-8")

        def git(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(["git", *args], env=env, input=stdin, capture_output=True, text=True, check=True)
            return done.stdout.strip()

        git("read-tree", "main")
        git("add", "-A", PATH)
        tree = git("write-tree")
        sha = git("commit-tree", tree, "-p", "main", stdin=f"Add {count} generated workloads\n")
        git("update-ref", "refs/heads/main", sha)


def test_thousands_of_files_go_into_one_commit_with_a_bounded_message(make_world: WorldFactory) -> None:
    world = make_world(image_repo="bulk/many-files")
    commit_many(world, MANY)
    ref = f"{world.registry.host}/bulk/many-files"
    world.write_policy(group="all", images=f'    - name: bulk\n      repository: {ref}\n      filter: "0.1.*"\n')
    seed = world.git.head(world.repo)

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["committed"]
    head = world.git.head(world.repo)
    assert head is not None and seed is not None
    assert world.git.git(world.repo, "rev-parse", f"{head}^").strip() == seed, "one commit on the seed"
    changed = world.git.git(world.repo, "diff", "--name-only", seed, head).split()
    assert len(changed) == MANY and set(changed) == {_file(i) for i in range(MANY)}
    assert world.git.read_file(world.repo, _file(MANY - 1)) == MANIFEST.format(i=MANY - 1, image=world.image).replace(
        ":0.1.0 #", ":0.1.2 #"
    )
    message = world.git.message(world.repo)
    listed = [line for line in message.splitlines() if line.startswith(f"  {PATH}/generated/")]
    assert len(listed) == CHANGES_IN_MESSAGE
    assert f"... and {MANY - CHANGES_IN_MESSAGE:,} more changes of bulk ({MANY:,} changes in all;" in message
    assert len(message.encode()) < 32_000
    assert f"Gitbot-Policy: {POLICY}" in message and "Gitbot-To: 0.1.2" in message
