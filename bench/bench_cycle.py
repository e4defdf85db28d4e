"""Whole reconcile cycles over generated repositories of 100, 1,000 and 10,000 manifests, against the real
loopback git server and `docker-registry`, side by side with Renovate's lookup when it is installed.

Per size it prints: cold `plan`, cold `once` (plan, edit, commit, push; each the median of three runs on copies
of the repository up to 1,000 manifests, `--repeats`), the `once` after it (which scans the
files its own commit changed), warm no-change `once`, the daemon's warm no-change cycle (`CycleRunner` in a
process of its own, as `gitbot run` builds it, its cycles spaced as a schedule spaces them; wall and CPU
seconds), the peak RSS of each `gitbot` process, registry requests per cycle and the time per manifest; then
the daemon's RSS over many no-change cycles, and the goals as ratios. A stage that fails prints
`failed: <its one line>` as its figure.

`gitbot` runs as a user installs it: with an environment of its runtime dependencies only (`bench.runtime_env`,
made once under ~/.cache), this checkout's code on PYTHONPATH; `--this-python` runs it with this interpreter
and the development tools installed beside it instead. The daemon's figures come from this interpreter.

Run alone: `python -m bench.bench_cycle [--sizes 100,1000] [--no-renovate] [--renovate PATH]`. Renovate is
looked for at $GITBOT_BENCH_RENOVATE, on PATH, and under ~/.cache/gitbot-bench-renovate (install it there with
`npm install --no-audit --no-fund --omit=optional renovate@39.264.1`); it is never needed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cycle_repo
from bench.runtime_env import runtime_python
from tests.support.gitserver import GitServer
from tests.support.registry import RunningRegistry, start_registry

DEFAULT_SIZES = (100, 1_000, 10_000)
RENOVATE_SIZES = (100, 1_000)  # Renovate takes minutes at 10,000; --renovate-sizes widens this
DAEMON_CYCLES = 5
# Cold stages run this many times (each on its own copy of the repository) up to this size; the figure is the
# median run. One run of a second on a shared machine can be off by half; Renovate's run lasts ten times longer.
COLD_REPEATS = 3
COLD_REPEAT_MAX_SIZE = 1_000
MEMORY_CYCLES = 30
STAGE_TIMEOUT = 1_800.0
# The goals of a fast cycle (seconds, megabytes and a ratio to Renovate's lookup-only run).
GOAL_RATIO = 10.0
GOAL_COLD_10K = 10.0
GOAL_DAEMON_NOCHANGE = 0.5
GOAL_ONCE_NOCHANGE = 1.0
GOAL_MEMORY_MB = 200.0
GOAL_DAEMON_GROWTH_MB = 5.0  # flat: what is left of one cycle's garbage, not a leak per cycle

UpdateKey = tuple[str, str, str]  # file, image name (last path part), new tag


@dataclass
class Run:
    """One process run: wall seconds, peak RSS (MB, largest process of its tree), registry requests, output."""

    seconds: float
    rss_mb: float
    requests: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def failed(self) -> str | None:
        if self.returncode == 0:
            return None
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        # gitbot's own error line when there is one (a hint may follow it), else the last line (a traceback's).
        errors = [line for line in lines if line.startswith("gitbot: error:")]
        chosen = errors[-1] if errors else lines[-1] if lines else f"exit {self.returncode}"
        return chosen[:300]


@dataclass
class SizeResult:
    size: int
    references: int = 0
    updatable: int = 0
    figures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    requests: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def registry_log_size(registry: RunningRegistry) -> int:
    return registry.log.stat().st_size


def registry_requests_since(registry: RunningRegistry, offset: int) -> int:
    """Requests in the registry's access log written after byte `offset` (a line per request, by client)."""
    with registry.log.open("rb") as log:
        log.seek(offset)
        return sum(1 for line in log if line.startswith(b"127.0.0.1 "))


def run_process(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None, registry: RunningRegistry) -> Run:
    """Run `argv` to its end; its rusage (wait4) gives the peak RSS of it and of the children it waited for."""
    offset = registry_log_size(registry)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=err)
        timer = threading.Timer(STAGE_TIMEOUT, process.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if process.returncode < 0:
        stderr += f"\nkilled by signal {-process.returncode} (after {seconds:.0f} s)"
    return Run(
        seconds,
        usage.ru_maxrss / 1024,
        registry_requests_since(registry, offset),
        process.returncode,
        stdout,
        stderr,
    )


def gitbot(
    command: str, policies: Path, env: Mapping[str, str], registry: RunningRegistry, python: str = sys.executable
) -> Run:
    argv = [python, "-m", "gitbot", command, "--policy", cycle_repo.POLICY, "--policies", str(policies)]
    return run_process(argv, env=env, cwd=None, registry=registry)


def planned_updates(stdout: str) -> Counter[UpdateKey]:
    """(file, image, new tag) of every change `gitbot plan` printed."""
    found: Counter[UpdateKey] = Counter()
    image = ""
    for line in stdout.splitlines():
        if line.startswith("gitbot(") and "): " in line:
            image = line.split("): ", 1)[1].split(" ", 1)[0]
        elif line.startswith("  ") and " -> " in line:
            file = line.strip().split(":", 1)[0]
            new = line.rsplit(" -> ", 1)[1].strip().rsplit(":", 1)[-1]
            found[(file, image, new)] += 1
    return found


# -- Renovate ----------------------------------------------------------------------------------------------


def find_renovate(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get("GITBOT_BENCH_RENOVATE"), shutil.which("renovate")]
    candidates.append(str(Path.home() / ".cache" / "gitbot-bench-renovate" / "node_modules" / ".bin" / "renovate"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def renovate_updates(log: str) -> Counter[UpdateKey] | None:
    """(file, image, new tag) of every docker update in Renovate's `packageFiles with updates` record."""
    for line in log.splitlines():
        if '"packageFiles with updates"' not in line:
            continue
        record = json.loads(line)
        found: Counter[UpdateKey] = Counter()
        for files in record.get("config", {}).values():
            for package_file in files:
                for dep in package_file.get("deps", []):
                    if dep.get("datasource") != "docker":
                        continue
                    for update in dep.get("updates", []):
                        image = str(dep.get("depName", "")).rsplit("/", 1)[-1]
                        found[(package_file["packageFile"], image, str(update.get("newValue")))] += 1
        return found
    return None


def run_renovate(renovate: Path, server: GitServer, repo: str, work: Path, registry: RunningRegistry) -> Run:
    """Renovate's lookup-only run (`--platform=local --dry-run=lookup`) in a fresh clone, with its own caches."""
    clone = work / "renovate-clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(server.repo_path(repo)), str(clone)], check=True, capture_output=True
    )
    config = work / "renovate-config.json"
    settings = {
        "onboarding": False,
        "requireConfig": "optional",
        "enabledManagers": ["kubernetes", "kustomize"],
        "kubernetes": {"fileMatch": [r"\.yaml$"]},
    }
    config.write_text(json.dumps(settings), encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
        "RENOVATE_CONFIG_FILE": str(config),
        "RENOVATE_CACHE_DIR": str(work / "renovate-cache"),
        "RENOVATE_BASE_DIR": str(work / "renovate-base"),
        "RENOVATE_HOST_RULES": json.dumps([{"matchHost": "127.0.0.1", "hostType": "docker", "insecureRegistry": True}]),
    }
    return run_process([str(renovate), "--platform=local", "--dry-run=lookup"], env=env, cwd=clone, registry=registry)


# -- the daemon's cycle, in a process of its own ------------------------------------------------------------


def run_daemon(
    policies: Path, env: Mapping[str, str], cycles: int, registry: RunningRegistry
) -> tuple[Run, dict[str, Any]]:
    """`bench.daemon_cycles` in a process of its own: its run and the figures it printed."""
    argv = [sys.executable, "-m", "bench.daemon_cycles", str(policies), cycle_repo.POLICY, str(cycles)]
    run = run_process(argv, env=env, cwd=cycle_repo.ROOT, registry=registry)
    for line in run.stdout.splitlines():
        if line.startswith("DAEMON "):
            return run, json.loads(line[len("DAEMON ") :])
    if run.returncode == 0:
        run.returncode = 1
        run.stderr += "\nno figures printed"
    return run, {}


# -- one size ---------------------------------------------------------------------------------------------


def _failed(result: SizeResult, stage: str, why: str) -> None:
    result.figures[stage] = f"failed: {why}"


def _record(result: SizeResult, stage: str, run: Run, size: int, runs: Sequence[Run] = ()) -> bool:
    """Record `run` as the figure of `stage`; `runs` (when more than one) are the runs it is the median of."""
    why = run.failed
    if why is not None:
        _failed(result, stage, why)
        return False
    result.seconds[stage] = run.seconds
    result.rss_mb[stage] = run.rss_mb
    result.requests[stage] = run.requests
    spread = (
        f" (median of {len(runs)}: {min(r.seconds for r in runs):.2f}-{max(r.seconds for r in runs):.2f} s)"
        if len(runs) > 1
        else ""
    )
    result.figures[stage] = (
        f"{run.seconds:7.2f} s  {run.seconds * 1000 / size:7.2f} ms/manifest  "
        f"peak RSS {run.rss_mb:6.0f} MB  registry requests {run.requests}{spread}"
    )
    return True


def median_run(runs: Sequence[Run]) -> Run:
    """The run of median wall time (the upper one of an even count); a failed run when one failed."""
    failed = [run for run in runs if run.failed is not None]
    if failed:
        return failed[0]
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def measure(
    size: int,
    *,
    server: GitServer,
    registry: RunningRegistry,
    work: Path,
    renovate: Path | None,
    cycles: int,
    repeats: int = COLD_REPEATS,
    python: str = sys.executable,
) -> SizeResult:
    result = SizeResult(size)
    tree = work / "tree"
    generated = cycle_repo.generate(tree, size, registry.host)
    result.references, result.updatable = generated.references, generated.updatable
    # The cold stages run on copies of one repository; the first copy goes on to the warm stages.
    copies = repeats if size <= COLD_REPEAT_MAX_SIZE else 1
    names = [f"config-{size}"] + [f"config-{size}-{copy}" for copy in range(2, copies + 1)]
    policy_dirs = [work / "policies"] + [work / f"policies-{copy}" for copy in range(2, copies + 1)]
    for copy_name, directory in zip(names, policy_dirs, strict=True):
        url = cycle_repo.load_repository(server, copy_name, tree)
        cycle_repo.write_policy(directory, url=url, username=server.username, registry_host=registry.host)
    shutil.rmtree(tree)
    name, policies = names[0], policy_dirs[0]

    expected: Counter[UpdateKey] | None = None
    if renovate is not None:
        run = run_renovate(renovate, server, name, work / "renovate", registry)
        if _record(result, "renovate lookup", run, size):
            expected = renovate_updates(run.stdout + run.stderr)
            if expected is None:
                _failed(result, "renovate lookup", "no 'packageFiles with updates' record in its log")

    runs = [
        gitbot("plan", directory, cycle_repo.gitbot_env(server, work / f"plan-home-{copy}"), registry, python)
        for copy, directory in enumerate(policy_dirs, 1)
    ]
    run = median_run(runs)
    if _record(result, "cold plan", run, size, runs):
        found = planned_updates(run.stdout)
        total = sum(found.values())
        if total != generated.updatable:
            result.notes.append(f"plan found {total} updates, {generated.updatable} expected")
        if expected is not None:
            if found == expected:
                result.notes.append(f"gitbot and Renovate found the same {total} updates")
            else:
                only_gitbot, only_renovate = found - expected, expected - found
                result.notes.append(
                    f"updates differ: {sum(only_gitbot.values())} only gitbot (e.g. {next(iter(only_gitbot), '-')}), "
                    f"{sum(only_renovate.values())} only Renovate (e.g. {next(iter(only_renovate), '-')})"
                )

    envs = [cycle_repo.gitbot_env(server, work / f"once-home-{copy}") for copy in range(1, copies + 1)]
    runs = [gitbot("once", directory, env, registry, python) for directory, env in zip(policy_dirs, envs, strict=True)]
    once_env = envs[0]
    if _record(result, "cold once", median_run(runs), size, runs):
        committed = sum(1 for line in runs[0].stdout.splitlines() if line.startswith("committed"))
        landed = [cycle_repo.count_at(server, copy_name, cycle_repo.NEWER) for copy_name in names]
        result.notes.append(
            f"once committed {committed} changes, {landed[0]} of {generated.updatable} references moved"
            + ("" if len(set(landed)) == 1 else f" (copies: {landed})")
        )
    else:
        # The no-change figures still count: a person brings every reference up to date instead.
        cycle_repo.generate(tree, size, registry.host, updated=True)
        cycle_repo.commit_tree(server, name, tree, "Update every image by hand", ("Other Person", "other@example.test"))
        shutil.rmtree(tree)
        result.notes.append("cold once failed: a person's commit updated the references for the no-change figures")
    renovate_s, once_s = result.seconds.get("renovate lookup"), result.seconds.get("cold once")
    if renovate_s is not None and once_s is not None:
        result.notes.append(f"Renovate lookup / gitbot cold once: {renovate_s / once_s:.2f}x")
    # The first cycle after a commit scans the files it changed again (new blobs, not yet in the scan cache);
    # the next one finds the branch as it left it: the steady no-change cycle.
    for stage in ("once after the commit", "warm no-change once"):
        run = gitbot("once", policies, once_env, registry, python)
        if _record(result, stage, run, size) and "nothing to change" not in run.stdout:
            result.notes.append(f"the {stage} changed something: " + run.stdout.strip().splitlines()[0])

    run, daemon = run_daemon(policies, once_env, cycles, registry)
    why = run.failed or (daemon.get("error") or None)
    if why is not None:
        _failed(result, "daemon no-change cycle", why)
    else:
        median = statistics.median(daemon["durations"])
        per_cycle = statistics.median(daemon["requests"])
        result.seconds["daemon no-change cycle"] = median
        result.rss_mb["daemon no-change cycle"] = daemon["hwm_mb"]
        result.requests["daemon no-change cycle"] = per_cycle
        result.figures["daemon no-change cycle"] = (
            f"{median:7.2f} s  {median * 1000 / size:7.2f} ms/manifest  "
            f"peak RSS {daemon['hwm_mb']:6.0f} MB  registry requests {per_cycle:.0f} "
            f"(median of {len(daemon['durations'])} cycles {daemon['spacing']:.1f} s apart, "
            f"{statistics.median(daemon['cpu']):.2f} s CPU in gitbot, "
            f"max {max(daemon['durations']):.2f} s; outcomes {daemon['outcomes']})"
        )
    return result


def memory_check(
    size: int, *, server: GitServer, registry: RunningRegistry, work: Path, cycles: int
) -> tuple[str, float | None]:
    """RSS of one daemon process over `cycles` no-change cycles: start and end."""
    tree = work / "tree"
    cycle_repo.generate(tree, size, registry.host)
    url = cycle_repo.load_repository(server, f"memory-{size}", tree)
    shutil.rmtree(tree)
    policies = work / "policies"
    cycle_repo.write_policy(policies, url=url, username=server.username, registry_host=registry.host)
    env = cycle_repo.gitbot_env(server, work / "home")
    # The first cycle delivers the updates; the `cycles` measured after it change nothing.
    run, daemon = run_daemon(policies, env, cycles, registry)
    why = run.failed or (daemon.get("error") or None)
    if why is not None:
        return f"failed: {why}", None
    start, end = daemon["rss_start_mb"], daemon["rss_end_mb"]
    return (
        f"{size} manifests, {cycles} no-change cycles in one process: RSS {start:.0f} MB after the first cycle, "
        f"{end:.0f} MB after the last ({end - start:+.1f} MB), peak {daemon['hwm_mb']:.0f} MB",
        end - start,
    )


# -- output ------------------------------------------------------------------------------------------------


def _goal(label: str, value: float | None, goal: str, met: bool | None, unit: str) -> str:
    shown = "n/a" if value is None else f"{value:.2f}{unit}"
    verdict = "not measured" if met is None else ("met" if met else "NOT met")
    return f"  {label:<48} {shown:>10}   goal {goal:<9} {verdict}"


def _below(value: float | None, limit: float) -> bool | None:
    return None if value is None else value < limit


def print_goals(results: Mapping[int, SizeResult], renovate: Path | None, growth: float | None = None) -> None:
    print("goals:")
    at_1k, at_10k = results.get(1_000), results.get(10_000)
    ratio = None
    if at_1k is not None and "renovate lookup" in at_1k.seconds and "cold once" in at_1k.seconds:
        ratio = at_1k.seconds["renovate lookup"] / at_1k.seconds["cold once"]
    label = "Renovate lookup / cold once at 1,000" + ("" if renovate is not None else " (no Renovate)")
    print(_goal(label, ratio, f">= {GOAL_RATIO:.0f}x", None if ratio is None else ratio >= GOAL_RATIO, "x"))
    cold = at_10k.seconds.get("cold once") if at_10k else None
    print(_goal("cold once at 10,000", cold, f"< {GOAL_COLD_10K:.0f} s", _below(cold, GOAL_COLD_10K), " s"))
    daemon = at_10k.seconds.get("daemon no-change cycle") if at_10k else None
    goal = f"< {GOAL_DAEMON_NOCHANGE} s"
    print(_goal("daemon no-change cycle at 10,000", daemon, goal, _below(daemon, GOAL_DAEMON_NOCHANGE), " s"))
    largest = max(results)
    nochange = results[largest].seconds.get("warm no-change once")
    goal = f"< {GOAL_ONCE_NOCHANGE:.0f} s"
    print(_goal(f"no-change once at {largest:,}", nochange, goal, _below(nochange, GOAL_ONCE_NOCHANGE), " s"))
    peaks = [mb for result in results.values() for stage, mb in result.rss_mb.items() if stage != "renovate lookup"]
    peak = max(peaks) if peaks else None
    goal = f"< {GOAL_MEMORY_MB:.0f} MB"
    print(_goal("peak RSS of gitbot (any stage, any size)", peak, goal, _below(peak, GOAL_MEMORY_MB), " MB"))
    goal = f"< {GOAL_DAEMON_GROWTH_MB:.0f} MB"
    print(_goal("daemon RSS growth over the memory check", growth, goal, _below(growth, GOAL_DAEMON_GROWTH_MB), " MB"))


STAGES = (
    "set-up",
    "renovate lookup",
    "cold plan",
    "cold once",
    "once after the commit",
    "warm no-change once",
    "daemon no-change cycle",
)


def print_size(result: SizeResult) -> None:
    print(
        f"{result.size:>6,} manifests, {result.references:,} image references over {cycle_repo.IMAGES} images, "
        f"{result.updatable:,} with a newer tag"
    )
    for stage in STAGES:
        if stage in result.figures:
            print(f"  {stage:<24} {result.figures[stage]}")
    for note in result.notes:
        print(f"  - {note}")


def print_growth(results: Mapping[int, SizeResult]) -> None:
    """Seconds per stage and size, and milliseconds per manifest, side by side."""
    sizes = sorted(results)
    print("growth (seconds; ms per manifest):")
    print(f"  {'':<24}" + "".join(f"{size:>22,}" for size in sizes))
    for stage in STAGES[1:]:
        cells = []
        for size in sizes:
            seconds = results[size].seconds.get(stage)
            failed = results[size].figures.get(stage, "").startswith("failed")
            shown = "failed" if failed else "-" if seconds is None else f"{seconds:.2f} ({seconds * 1000 / size:.2f})"
            cells.append(f"{shown:>22}")
        print(f"  {stage:<24}" + "".join(cells))


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "").replace(",", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are whole numbers separated by commas, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("give at least one size of 1 or more")
    return sizes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=DEFAULT_SIZES, help="manifests per repository")
    parser.add_argument("--no-renovate", action="store_true", help="gitbot's figures alone")
    parser.add_argument("--renovate", help="the renovate executable (default: looked for)")
    parser.add_argument("--renovate-sizes", type=parse_sizes, default=RENOVATE_SIZES, help="sizes Renovate runs at")
    parser.add_argument(
        "--this-python",
        action="store_true",
        help="run gitbot with this interpreter and its packages, not an environment of its runtime dependencies",
    )
    parser.add_argument("--cycles", type=int, default=DAEMON_CYCLES, help="daemon no-change cycles measured")
    parser.add_argument(
        "--repeats",
        type=int,
        default=COLD_REPEATS,
        help=f"runs of each cold stage up to {COLD_REPEAT_MAX_SIZE:,} manifests (the median is the figure)",
    )
    parser.add_argument("--memory-cycles", type=int, default=MEMORY_CYCLES, help="cycles of the memory check")
    parser.add_argument("--memory-size", type=int, default=1_000, help="manifests of the memory check")
    args = parser.parse_args([] if argv is None else argv)
    renovate = None if args.no_renovate else find_renovate(args.renovate)
    if args.no_renovate:
        print("Renovate: not run (--no-renovate); gitbot's figures alone")
    elif renovate is None:
        print("Renovate: not installed (see this module's docstring); gitbot's figures alone")
    else:
        print(f"Renovate: {renovate} (lookup only) at sizes {', '.join(map(str, args.renovate_sizes))}")
    if args.this_python:
        python, what = sys.executable, "this interpreter (--this-python)"
    else:
        python, what = runtime_python()
    print(f"gitbot: runs with {what}")
    results: dict[int, SizeResult] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        registry = start_registry(Path(tmp) / "registry")
        try:
            cycle_repo.push_bench_tags(registry)
            with GitServer(Path(tmp) / "git") as server:
                for size in args.sizes:
                    peer = renovate if size in args.renovate_sizes else None
                    work = Path(tmp) / f"size-{size}"
                    try:
                        results[size] = measure(
                            size,
                            server=server,
                            registry=registry,
                            work=work,
                            renovate=peer,
                            cycles=args.cycles,
                            repeats=max(1, args.repeats),
                            python=python,
                        )
                    except Exception as exc:  # a broken set-up is a figure too; the other sizes still run
                        results[size] = SizeResult(size, figures={"set-up": f"failed: {type(exc).__name__}: {exc}"})
                    print_size(results[size])
                    sys.stdout.flush()
                print_growth(results)
                growth: float | None = None
                try:
                    line, growth = memory_check(
                        args.memory_size,
                        server=server,
                        registry=registry,
                        work=Path(tmp) / "memory",
                        cycles=args.memory_cycles,
                    )
                except Exception as exc:
                    line = f"failed: {type(exc).__name__}: {exc}"
                print(f"daemon memory: {line}")
                print_goals(results, renovate, growth)
        finally:
            registry.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
