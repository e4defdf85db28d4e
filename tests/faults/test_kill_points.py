"""gitbot killed mid-cycle and started again converges: a few fixed points of the fault sweep.

Each case runs `gitbot` as a subprocess against the real git server, registry, Prometheus and GitHub fake,
kills its process group at one point (a progress stage, or a request the git server or the GitHub fake
receives, before or after it takes effect), runs it again and compares the environment branch, the bot's
branches and the pull requests with what one uninterrupted run leaves, and looks for work directories left
behind. `python -m bench faults` sweeps every stage with delays and every request; this module keeps a few
points of each kind. Runs are forked from a process that has imported gitbot already (the same CLI, without
an interpreter's start-up each).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import WORK_DIRECTORY
from tests.faults.harness import (
    Action,
    Case,
    FaultPoint,
    Reference,
    World,
    judge,
    reference_run,
    run_case,
    scenarios,
    world,
)

pytestmark = pytest.mark.real

References = Callable[[str], Reference]


@pytest.fixture(scope="module")
def faults_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("faults-servers")) as running:
        yield running


@pytest.fixture(scope="module")
def references(faults_world: World, tmp_path_factory: pytest.TempPathFactory) -> References:
    """The uninterrupted run of a scenario, made once per module when first asked for."""
    made: dict[str, Reference] = {}

    def reference(name: str) -> Reference:
        if name not in made:
            scenario = scenarios(faults_world)[name]
            directory = tmp_path_factory.mktemp(f"reference-{name}")
            made[name] = reference_run(faults_world, scenario, directory, launcher="fork")
        return made[name]

    return reference


def converge(
    world: World, references: References, tmp_path: Path, name: str, point: FaultPoint, action: Action = "kill"
) -> tuple[str, ...]:
    """The problems of one case (none when it converged); the point must really interrupt the run."""
    reference = references(name)
    assert reference.problems == ()
    scenario = scenarios(world)[name]
    outcome = run_case(world, scenario, reference, point, tmp_path / "case", action=action, launcher="fork")
    assert outcome.interrupted, f"{point.label} did not interrupt the run"
    return outcome.problems


PUSH = "POST git-receive-pack"
KILLS = [
    # Killed while fetching: the cache is half-updated, no worktree exists yet.
    ("commit", FaultPoint("git", "POST git-upload-pack", phase="received")),
    ("commit", FaultPoint("stage", "plan")),
    # Killed with a worktree under the cache dir: the next run removes it.
    ("commit", FaultPoint("stage", "deliver")),
    ("commit", FaultPoint("git", PUSH, phase="received")),
    ("commit", FaultPoint("git", PUSH, phase="handled")),
    ("pull-request", FaultPoint("stage", "scan")),
    ("pull-request", FaultPoint("git", PUSH, 2, "handled")),
    ("pull-request", FaultPoint("github", "POST /pulls", phase="received")),
    # GitHub created the pull request, the labels never came: the next run adds them.
    ("pull-request", FaultPoint("github", "POST /pulls", phase="handled")),
    ("canary-step", FaultPoint("stage", "analysis podinfo")),
    ("canary-step", FaultPoint("git", PUSH, phase="handled")),
    ("canary-rollback", FaultPoint("git", PUSH, phase="handled")),
    # The revert restores 5% set by hand; the same commit ends at 0%.
    ("canary-rollback-hand-set", FaultPoint("stage", "deliver")),
    ("manual-rollback", FaultPoint("git", PUSH, phase="received")),
    # Run again after its revert landed, `gitbot rollback ga` finds that revert and reverts nothing older.
    ("manual-rollback", FaultPoint("git", PUSH, phase="handled")),
    # Gated on staging: the run after the kill still takes only the soaked tag that was not rolled back there.
    ("promotion", FaultPoint("git", PUSH, phase="handled")),
    ("promotion-pull-request", FaultPoint("github", "POST /pulls", phase="handled")),
    # The re-pin landed with the image update; the run after it pins nothing again.
    ("digest-repin", FaultPoint("git", PUSH, phase="received")),
    # The rollback landed; the runs after it keep the canary on 2.0.0 and 2.0.1 quarantined.
    ("rollback-image", FaultPoint("git", PUSH, phase="handled")),
    ("restart-pull-request", FaultPoint("stage", "deliver")),
]


@pytest.mark.parametrize(("name", "point"), KILLS, ids=[f"{n}-{p.label}" for n, p in KILLS])
def test_a_killed_run_run_again_ends_as_one_uninterrupted_run(
    faults_world: World, references: References, tmp_path: Path, name: str, point: FaultPoint
) -> None:
    assert converge(faults_world, references, tmp_path, name, point) == ()


ADVERTISE_PUSH, ADVERTISE_FETCH = "GET info/refs?git-receive-pack", "GET info/refs?git-upload-pack"
# At requests, not stages: a person's push timed by a stage could land inside the bot's push by chance.
PERSON = [
    ("commit", FaultPoint("git", ADVERTISE_PUSH, phase="received")),
    # Between the bot's ref advertisement and its update: "failed to update ref", retried like a rejection.
    ("commit", FaultPoint("git", PUSH, phase="received")),
    ("commit", FaultPoint("git", PUSH, phase="handled")),
    ("pull-request", FaultPoint("git", ADVERTISE_FETCH, phase="handled")),
    ("canary-rollback", FaultPoint("git", ADVERTISE_PUSH, phase="received")),
    ("canary-rollback", FaultPoint("git", PUSH, phase="received")),
    ("rollback-image", FaultPoint("git", PUSH, phase="received")),
    ("restart", FaultPoint("git", PUSH, phase="received")),
]


@pytest.mark.parametrize(("name", "point"), PERSON, ids=[f"{n}-{p.label}" for n, p in PERSON])
def test_a_person_pushing_during_a_cycle_keeps_their_commit_and_the_bot_makes_its_change_once(
    faults_world: World, references: References, tmp_path: Path, name: str, point: FaultPoint
) -> None:
    assert converge(faults_world, references, tmp_path, name, point, action="push") == ()


def abandon_worktree_add(cache: Path) -> list[str]:
    """In every cache repository under `cache`, what `git worktree add` leaves when killed before its checkout:
    the worktree registered, locked "initializing", its HEAD not yet set, its directory not yet made."""
    planted = []
    for repository in sorted(p for p in (cache / "git").iterdir() if (p / "HEAD").is_file()):
        work = cache / "git" / WORK_DIRECTORY / f"{repository.name}.killedadd0000"
        ref = next(line.split()[1] for line in _git(repository, "show-ref").splitlines())
        _git(
            repository,
            "worktree",
            "add",
            "--detach",
            "--no-checkout",
            "--lock",
            "--reason",
            "initializing",
            str(work),
            ref,
        )
        (repository / "worktrees" / work.name / "HEAD").write_text("0" * 40 + "\n", encoding="utf-8")
        shutil.rmtree(work)
        planted.append(repository.name)
    return planted


def _git(repository: Path, *args: str) -> str:
    done = subprocess.run(["git", "--git-dir", str(repository), *args], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.parametrize("name", ["promotion", "commit"])
def test_a_run_killed_inside_git_worktree_add_does_not_stop_the_fetches_after_it(
    faults_world: World, references: References, tmp_path: Path, name: str
) -> None:
    # Killed once the cycle had planned (its caches, the earlier environment's among them, are filled), then
    # as if a kill had also cut `git worktree add` short in each cache: the next run fetches and converges.
    reference = references(name)
    scenario = scenarios(faults_world)[name]
    with Case(faults_world, scenario, tmp_path / "case", launcher="fork") as case:
        assert case.run(FaultPoint("stage", "plan")).killed
        assert len(abandon_worktree_add(case.cache)) == (2 if scenario.staging else 1)
        again = case.run()
        assert again.code == 0, again.output[-2000:]
        assert judge(case, reference.snapshot) == []
