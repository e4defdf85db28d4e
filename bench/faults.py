"""The fault sweep: gitbot killed at every stage and request of a cycle, then run again, must converge.

Two sweeps over the real loopback servers (git http-backend, docker-registry, Prometheus, the GitHub fake):

- kill: `gitbot once` (or `gitbot rollback ga`) is killed with SIGKILL, with its whole process group, when
  its progress reaches each stage (and a few delays later) and when the git server or the GitHub fake
  receives each of its requests (before and after the request takes effect); it is then run again to the
  end. The environment branch, the bot's branches and the pull requests must end exactly as one
  uninterrupted run leaves them, main must only ever move forward, and no work directory may be left
  (under `<cache>/git/work/`, where a killed cycle's worktree stays until the next run removes it).
- person: at the same points a person pushes a commit to the environment branch instead; the cycle must
  finish with the person's commit kept and the bot's change made once.

Scenarios of the newer behaviours (promotion gates on an earlier environment, a digest re-pin, a rollback that
returns the canary image, a restart on a new canary image; each in commit and pull-request mode) also check
an invariant over every value main and the bot's branches took (a tag the gate holds never lands, a pin names
the digest its tag has, the quarantined tag never comes back, a new canary tag never runs at the old weight),
and run `gitbot once` one more time after converging, which must change nothing more (or, after a restart,
take only the first step of the new rollout).

Prints per sweep and scenario how many cases held, then every failed case with what differed; exits 1
when any case failed. `python -m bench faults [SCENARIO...] [--sweep kill|person|both] [--quick]
[--launcher subprocess|fork]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tests.faults.harness import (
    Action,
    FaultPoint,
    Launcher,
    Outcome,
    Reference,
    World,
    clean,
    reference_run,
    request_points,
    run_case,
    scenarios,
    stage_points,
    world,
)

# Seconds after a stage starts: 0 reaches the stage's first instant; the others land inside the longer
# stages (checkout, deliver) and between the commits and the push.
DELAYS = (0.0, 0.02, 0.08, 0.2)
QUICK_DELAYS = (0.0,)
NEWER = ("promotion", "digest-repin", "rollback-image", "restart")
PERSON_SCENARIOS = (
    *("commit", "pull-request", "canary-step", "canary-rollback", "manual-rollback"),
    *(f"{name}{suffix}" for name in NEWER for suffix in ("", "-pull-request")),
)


def kill_points(reference: Reference, delays: Sequence[float]) -> list[FaultPoint]:
    return stage_points(reference, tuple(delays)) + request_points(reference)


def person_points(reference: Reference) -> list[FaultPoint]:
    # A person's push at a stage, and just before or after each of the bot's git requests reaches the server.
    return stage_points(reference, (0.0,)) + request_points(reference, kinds=("git",))


def sweep(
    env: World,
    name: str,
    reference: Reference,
    points: Sequence[FaultPoint],
    action: Action,
    work: Path,
    launcher: Launcher,
) -> list[Outcome]:
    scenario = scenarios(env)[name]
    outcomes = []
    for index, point in enumerate(points):
        directory = work / f"{action}-{name}-{index}"
        outcomes.append(run_case(env, scenario, reference, point, directory, action=action, launcher=launcher))
        # Each case leaves a repository's worth of files; only the outcome is kept.
        clean(directory)
    return outcomes


def report(sweep_name: str, name: str, title: str, outcomes: Sequence[Outcome], seconds: float) -> None:
    held = sum(o.held for o in outcomes)
    interrupted = sum(o.interrupted for o in outcomes)
    print(
        f"{sweep_name:<6} {name:<24} {held:>3}/{len(outcomes):<3} held   "
        f"({interrupted} interrupted mid-run; {seconds:5.1f} s)   {title}"
    )


KINDS = (
    ("left behind", "a work directory or checkout left behind"),
    ("the run after the kill exited", "the run after the kill failed"),
    ("the cycle exited", "the cycle failed after a person's push"),
    ("the person's commit", "a person's commit lost"),
    ("the point was never reached", "the fault point was never reached"),
    ("main moved", "main force-pushed"),
    ("main:", "main's files differ"),
    ("bot commits on main: no message", "a bot commit's message does not say what it must"),
    ("bot commits on main", "bot commits on main differ (duplicate or missing)"),
    ("bot branches", "the bot's branches differ"),
    ("branch ", "a bot branch's files differ"),
    ("pull requests", "pull requests differ (duplicate, missing or unlabelled)"),
)


def problem_kind(problem: str) -> str:
    if "open pull requests for" in problem:
        return "duplicate open pull requests"
    return next((kind for prefix, kind in KINDS if problem.startswith(prefix)), problem)


def print_failures(outcomes: Sequence[Outcome]) -> None:
    failed = [o for o in outcomes if not o.held]
    if not failed:
        return
    print(f"\n{len(failed)} failed cases:")
    for outcome in failed:
        mode = "" if not outcome.point.at else "killed at " if outcome.action == "kill" else "person pushed at "
        print(f"- [{outcome.scenario}] {mode}{outcome.point.label}")
        for problem in outcome.problems:
            print(f"    {problem}")
    kinds = Counter(kind for o in failed for kind in {problem_kind(problem) for problem in o.problems})
    print("\nfailed cases by kind of problem:")
    for kind, count in kinds.most_common():
        print(f"  {count:>4}  {kind}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="*", help="scenarios to run (default: all)")
    parser.add_argument("--sweep", choices=("kill", "person", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="stages without delays (fewer cases)")
    parser.add_argument(
        "--launcher",
        choices=("subprocess", "fork"),
        default="subprocess",
        help="`python -m gitbot` per run (default), or forked from a process with gitbot imported (faster)",
    )
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp, world(Path(tmp) / "servers") as env:
        known = scenarios(env)
        chosen = args.scenario or list(known)
        unknown = [name for name in chosen if name not in known]
        if unknown:
            parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(known)}")
        work = Path(tmp) / "cases"
        delays = QUICK_DELAYS if args.quick else DELAYS
        for name in chosen:
            reference = reference_run(env, known[name], work / f"reference-{name}", launcher=args.launcher)
            if reference.problems:
                # What the scenario expects fails without any fault: reported once, as its own case.
                unfaulted = Outcome(name, FaultPoint("stage", ""), "kill", False, reference.problems, reference.seconds)
                report("none", name, known[name].title, [unfaulted], reference.seconds)
                outcomes.append(unfaulted)
            sweeps: list[tuple[Action, list[FaultPoint]]] = []
            if args.sweep in ("kill", "both"):
                sweeps.append(("kill", kill_points(reference, delays)))
            if args.sweep in ("person", "both") and name in PERSON_SCENARIOS:
                sweeps.append(("push", person_points(reference)))
            for action, points in sweeps:
                started = time.monotonic()
                done = sweep(env, name, reference, points, action, work, args.launcher)
                label = "kill" if action == "kill" else "person"
                report(label, name, known[name].title, done, time.monotonic() - started)
                outcomes += done
    print_failures(outcomes)
    held = sum(o.held for o in outcomes)
    print(f"\n{held}/{len(outcomes)} cases held")
    return 0 if held == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
