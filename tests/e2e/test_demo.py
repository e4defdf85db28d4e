"""`gitbot demo` runs as a user runs it (a subprocess) and leaves the story it tells in its sandbox's git.

Each run keeps its sandbox (`--workdir`), so the checks read the bare repository itself: the commits'
subjects and trailers, the quarantine as the bot reads it back, and the final weights of the route.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.domain import Author
from gitbot.history import read_history
from gitbot.manifests import scan_text

BRANCH = "main"
VS_FILE = "clusters/staging/podinfo.yaml"
STORY = [
    "gitbot(demo): podinfo-ga 0.1.0 -> 0.1.2",
    "gitbot(demo): podinfo-canary 0.2.0 -> 0.2.1",
    "gitbot(demo): podinfo canary 0% -> 10%",
    "gitbot(demo): podinfo canary 10% -> 60%",
    "gitbot(demo): podinfo canary 60% -> 100%",
    "gitbot(demo): podinfo-canary 0.2.1 -> 0.2.2",
    "gitbot(demo): podinfo canary 0% -> 10%",
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def run_demo(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitbot", "demo", "--workdir", str(workdir), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def trailers(repo: Path, sha: str) -> list[tuple[str, str]]:
    out = git(repo, "log", "-1", "--format=%(trailers:only=true,unfold=true)", sha)
    return [tuple(line.split(": ", 1)) for line in out.splitlines() if ": " in line]  # type: ignore[misc]


def check_story(workdir: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    repo = workdir / "cluster-config.git"
    subjects = git(repo, "log", "--reverse", "--format=%s", BRANCH).splitlines()
    # The seed, the story's commits in order, then the rollback with the failed check in its subject.
    assert subjects[0].startswith("Seed:")
    assert subjects[1:-1] == STORY
    # The slow patch fails at the first step (10 %), where GA still has traffic to compare with.
    assert re.fullmatch(r"gitbot\(demo\): roll back podinfo canary \(p99 [0-9.]+ > 300; 2.50x GA\)", subjects[-1])
    shas = git(repo, "log", "--reverse", "--format=%H", BRANCH).split()
    steps = [dict(trailers(repo, sha)) for sha in shas[3:6]]
    assert [(t["Gitbot-Action"], t["Gitbot-From"], t["Gitbot-To"]) for t in steps] == [
        ("canary-step", "0", "10"),
        ("canary-step", "10", "60"),
        ("canary-step", "60", "100"),
    ]
    # The slow patch came with the canary's weights back at 0 % (onNewImage: restart), then started at 10 %.
    update, restart = dict(trailers(repo, shas[6])), dict(trailers(repo, shas[7]))
    assert (update["Gitbot-Action"], update["Gitbot-Restart"]) == ("image-update", "podinfo")
    assert (restart["Gitbot-Action"], restart["Gitbot-From"], restart["Gitbot-To"]) == ("canary-step", "0", "10")
    rollback = trailers(repo, shas[-1])
    assert ("Gitbot-Action", "rollback") in rollback and ("Gitbot-Quarantine", "podinfo-canary=0.2.2") in rollback
    assert ("Gitbot-From", "10") in rollback
    body = git(repo, "log", "-1", "--format=%b", shas[-1])
    # Only the new image's step is reverted: the old image's steps ended with the restart.
    assert f"This reverts commit {shas[7]}." in body
    for sha in shas[3:6]:
        assert sha not in body
    # Commit times follow the accelerated clock: more than an hour of history made in seconds.
    times = [int(t) for t in git(repo, "log", "--format=%ct", BRANCH).split()]
    assert times[0] - times[-2] >= 3600
    # The quarantine as the bot itself reads it back from git.
    workspace = GitWorkspace(str(repo), BRANCH, workdir / "check-cache", author=Author("t", "t@example.invalid"))
    with workspace.checkout() as checkout:
        history = read_history(checkout.log(), "demo")
    assert set(history.quarantined("podinfo-canary")) == {"0.2.2"}
    assert history.quarantined("podinfo-ga") == {}
    text = git(repo, "show", f"{BRANCH}:{VS_FILE}")
    weights = {t.destination: t.value for t in scan_text(VS_FILE, text) if t.kind == "weight"}
    assert weights == {"host=podinfo,subset=ga": "100", "host=podinfo,subset=canary": "0"}
    images = {t.resource: t.value for t in scan_text(VS_FILE, text) if t.kind == "image"}
    assert images["Deployment/test/podinfo-ga"].endswith(":0.1.2")
    # The rollback also put the canary back on the tag it ran before the slow patch.
    assert images["Deployment/test/podinfo-canary"].endswith(":0.2.1")
    assert ("Gitbot-Target", "podinfo-canary") in rollback and ("Gitbot-To", "0.2.1") in rollback
    # What the user sees: every commit as it happens, the log, the final route, and the time taken.
    out = result.stdout
    for subject in STORY:
        assert subject in out
    assert "git log --oneline main:" in out and "kind: VirtualService" in out
    match = re.search(
        r"story complete: (\d+) cycles, 8 commits, quarantined: podinfo-canary=0.2.2, "
        r"final canary weight 0%; took ([0-9.]+) s",
        out,
    )
    assert match is not None, out[-1500:]
    assert float(match.group(2)) < 30


@pytest.mark.real
def test_demo_with_the_real_registry_and_prometheus(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "sandbox")
    assert "tags:    Debian docker-registry on 127.0.0.1:" in result.stdout
    assert "metrics: Debian prometheus on 127.0.0.1:" in result.stdout
    check_story(tmp_path / "sandbox", result)


def test_demo_with_the_builtin_sources(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "sandbox", "--builtin")
    assert "built-in in-memory tag source (forced by --builtin)" in result.stdout
    assert "built-in in-memory metrics" in result.stdout
    check_story(tmp_path / "sandbox", result)


def test_demo_stops_with_an_error_when_the_story_cannot_finish(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "sandbox", "--builtin", "--max-cycles", "3")
    assert result.returncode == 1
    assert "story NOT complete" in result.stdout
    assert result.stderr.strip().splitlines() == ["gitbot: error: the demo's story did not complete (see above)"]


def test_demo_refuses_a_workdir_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    result = run_demo(tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "must be an empty directory" in result.stderr
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "mine"
