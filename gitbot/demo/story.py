"""The demo's run: a sandbox, its sources, and the real reconcile cycle on an accelerated clock.

A composition root like `gitbot.commands`: it builds the sandbox (a bare git repository seeded with the
example, the demo policy), picks the tag source and metrics (Debian's `docker-registry` and `prometheus`
when installed, else the built-in ones, and says which), then runs `gitbot.cycle.run_cycle` cycle after
cycle. After each cycle the simulated cluster "applies" the branch head (the canary weight and image read
back from the bare repository) and its traffic is what the next analysis sees. The story ends when the slow
canary patch, which arrives at 100% and so starts its rollout again at the first step, has been rolled back
there and quarantined; it is bounded by a number of cycles.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gitbot.adapters.prometheus import PrometheusMetrics
from gitbot.adapters.registry import OciRegistry
from gitbot.config import load_policy
from gitbot.cycle import CycleResult, Deps, run_cycle
from gitbot.demo import localservers, sandbox
from gitbot.demo.builtin import ManualClock, MemoryMetrics, MemoryRegistry
from gitbot.demo.cluster import SLOW, Applied, SimulatedCluster, applied_state
from gitbot.demo.localgit import ClockedGitWorkspace, commit_message, init_bare_repository, log_oneline, read_file
from gitbot.domain import Author, Plan
from gitbot.errors import UsageError
from gitbot.history import TRAILER_PREFIX, read_history
from gitbot.planner import CanaryOutcome
from gitbot.ports import Metrics, Registry

Echo = Callable[[str], None]
CYCLE_EVERY = timedelta(minutes=sandbox.CANARY_INTERVAL_MINUTES + 2)
# Under the `[cycle  N +0h00m] ` prefix of a commit line.
_INDENT = " " * 18
_ROW = re.compile(r"^\| (success-rate|latency-p99|requests) \| ([^|]*) \| ([^|]*) \| [^|]* \| (\w+)")


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path | None = None
    builtin: bool = False
    max_cycles: int = 20


@dataclass
class DemoResult:
    """What the run did: the commits (sha, subject), the quarantine, the final weight, the time taken."""

    completed: bool
    workdir: Path
    repository: Path
    cycles: int = 0
    commits: list[tuple[str, str]] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    final_weight: int | None = None
    seconds: float = 0.0


@contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        if given.exists() and (not given.is_dir() or any(given.iterdir())):
            raise UsageError(f"--workdir {given} must be an empty directory or not exist yet")
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="gitbot-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class _Tags:
    """The tag source, the repository the policy names for it, how to publish a tag, what to call it."""

    registry: Registry
    repository: str
    publish: Callable[[str], None]
    label: str


def _tag_source(stack: ExitStack, workdir: Path, builtin: bool) -> _Tags:
    if not builtin and localservers.registry_available():
        server = localservers.LocalRegistry(workdir / "registry")
        stack.callback(server.stop)
        server.start()
        client = stack.enter_context(OciRegistry(cache_ttl=0, rate_limit=None))
        repository = f"{server.host}/{sandbox.IMAGE_PATH}"

        def push(tag: str) -> None:
            server.push(sandbox.IMAGE_PATH, tag)

        return _Tags(
            client,
            repository,
            push,
            f"Debian docker-registry on {server.host} (real OCI registry, tags pushed over HTTP)",
        )
    memory = MemoryRegistry()
    reason = "forced by --builtin" if builtin else f"{localservers.REGISTRY_BINARY} not installed"
    return _Tags(
        memory,
        sandbox.PUBLIC_IMAGE,
        lambda tag: memory.publish(sandbox.PUBLIC_IMAGE, tag),
        f"built-in in-memory tag source ({reason})",
    )


class _Metrics:
    """The metrics the analysis reads, and how the simulated cluster's samples reach them."""

    def __init__(self, stack: ExitStack, workdir: Path, builtin: bool, cluster: SimulatedCluster) -> None:
        self.cluster = cluster
        self._prometheus: localservers.LocalPrometheus | None = None
        self._memory: MemoryMetrics | None = None
        if not builtin and localservers.prometheus_available():
            self._prometheus = localservers.LocalPrometheus(workdir / "prometheus")
            stack.callback(self._prometheus.stop)
            self.url = self._prometheus.url
            self.client: Metrics = stack.enter_context(PrometheusMetrics(self.url, timeout=10))
            self.label = (
                f"Debian prometheus on 127.0.0.1:{self._prometheus.port} "
                "(samples backfilled with promtool, restarted each cycle)"
            )
        else:
            self._memory = MemoryMetrics()
            self.client = self._memory
            self.url = "http://prometheus.istio-system:9090"
            reason = "forced by --builtin" if builtin else "prometheus/promtool not installed"
            self.label = f"built-in in-memory metrics answering gitbot's PromQL ({reason})"

    def until(self, moment: datetime) -> None:
        """Let the simulated traffic run up to `moment` and make its samples queryable."""
        if self._memory is not None:
            self.cluster.run_until(moment, self._memory.add)
            return
        self.cluster.run_until(moment)
        assert self._prometheus is not None
        self._prometheus.load(self.cluster.openmetrics())


def _evidence(plan: Plan, outcome: CanaryOutcome | None) -> str:
    """One line: why this commit was made and what the analysis measured."""
    if plan.action == "image-update":
        why = plan.evidence.split(";")[0]
        moved = [c for c in plan.changes if c.kind == "weight" and c.new == "0"]
        if moved:
            why += f"; canary weight {moved[0].old}% -> 0% in the same commit: the new image starts at the first step"
        return why
    parts = [outcome.decision.reason] if outcome and outcome.decision else []
    checks = []
    for line in plan.body.splitlines():
        match = _ROW.match(line)
        if match is None or match.group(1) == "requests":
            continue
        name, canary, stable, verdict = (g.strip() for g in match.groups())
        checks.append(
            f"{name} {canary}" + (f" vs GA {stable}" if stable not in ("-", "no data") else "") + f" {verdict}"
        )
    share = re.search(r"Observed canary share of requests over the window: ([0-9.]+%)", plan.body)
    if share:
        checks.append(f"share {share.group(1)}")
    return "; ".join(parts + checks)


def _clock_start(max_cycles: int) -> datetime:
    """Whole minutes, far enough back that every simulated sample is in the past (Prometheus wants history)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - (max_cycles + 2) * CYCLE_EVERY


def run_demo(options: DemoOptions, echo: Echo) -> DemoResult:
    """Run the story; print as it goes; return what happened (never raises for an incomplete story)."""
    started = time.monotonic()
    with ExitStack() as stack:
        workdir = stack.enter_context(_workdir(options.workdir))
        clock = ManualClock(_clock_start(options.max_cycles))
        cluster = SimulatedCluster(start=clock.now() - timedelta(minutes=15), profiles={sandbox.SLOW_TAG: SLOW})
        tags = _tag_source(stack, workdir, options.builtin)
        metrics = _Metrics(stack, workdir, options.builtin, cluster)
        bare = workdir / "cluster-config.git"
        author = Author("gitbot", "gitbot@example.invalid")
        seed = init_bare_repository(
            bare,
            sandbox.BRANCH,
            sandbox.seed_files(),
            "Seed: podinfo GA 0.1.0 and canary 0.2.0, VirtualService at 100/0",
            Author("demo", "demo@example.invalid"),
            clock.now() - timedelta(hours=1),
        )
        policy_file = workdir / "policies" / f"{sandbox.POLICY_NAME}.yaml"
        policy_file.parent.mkdir(parents=True)
        policy_file.write_text(sandbox.policy_text(str(bare), tags.repository, metrics.url), encoding="utf-8")
        policy = load_policy(policy_file)
        for tag in sandbox.INITIAL_TAGS:
            tags.publish(tag)
        result = DemoResult(False, workdir, bare)
        echo(f"gitbot demo: sandbox in {workdir}" + ("" if options.workdir else " (removed at the end)"))
        echo(f"  git:     bare repository {bare} (branch {sandbox.BRANCH}, seed {seed[:7]})")
        echo(f"  policy:  {policy_file}")
        echo(f"  tags:    {tags.label}")
        echo(f"  metrics: {metrics.label}")
        echo(f"  tags now: {', '.join(sandbox.INITIAL_TAGS)}; clock starts at {clock.now():%Y-%m-%d %H:%M}Z")
        echo("")
        deps = Deps(
            workspace=ClockedGitWorkspace(str(bare), sandbox.BRANCH, workdir / "cache", author=author, clock=clock),
            registry=tags.registry,
            clock=clock,
            metrics=lambda _canary: metrics.client,
            log=lambda message: echo(f"    gitbot: {message}"),
        )
        applied = _applied(bare)
        cluster.apply(applied)
        released = False
        start = clock.now()
        for cycle in range(1, options.max_cycles + 1):
            result.cycles = cycle
            metrics.until(clock.now())
            outcome = run_cycle(policy, deps, deliver=True)
            _report(echo, cycle, clock.now() - start, outcome, result)
            now_applied = _applied(bare)
            if now_applied != applied:
                echo(
                    f"{_INDENT}flux: applied {outcome.head[:7]}: canary weight {now_applied.weight}%, "
                    f"canary runs {now_applied.canary_tag}"
                )
            applied = now_applied
            cluster.apply(applied)
            result.final_weight = applied.weight
            podinfo = next((o.decision for o in outcome.canaries if o.name == "podinfo" and o.decision), None)
            if not released and podinfo is not None and podinfo.action == "complete":
                tags.publish(sandbox.SLOW_TAG)
                released = True
                echo(f"{_INDENT}registry: tag {sandbox.SLOW_TAG} released (a canary patch; it answers slowly)")
            if any(p.action == "rollback" for p in outcome.plans):
                result.quarantined = _quarantine(deps, policy.name)
                break
            clock.advance(CYCLE_EVERY)
        result.completed = _story_told(result, applied)
        _finish(echo, result, bare, started)
    return result


def _applied(bare: Path) -> Applied:
    """What Flux would apply now: the canary weight and image at the head of the branch."""
    text = read_file(bare, sandbox.BRANCH, sandbox.VIRTUAL_SERVICE_FILE)
    return applied_state({sandbox.VIRTUAL_SERVICE_FILE: text}, sandbox.ROUTE)


def _story_told(result: DemoResult, applied: Applied) -> bool:
    """Whether every step of the story happened, in order, and it ended rolled back and quarantined."""
    subjects = [subject.split(": ", 1)[-1] for _sha, subject in result.commits]
    # The slow patch arrives at 100% with the weights back at 0% (onNewImage: restart), starts again at the
    # first step and fails there.
    wanted = [
        "podinfo-ga 0.1.0 -> 0.1.2",
        "podinfo-canary 0.2.0 -> 0.2.1",
        "podinfo canary 0% -> 10%",
        "podinfo canary 10% -> 60%",
        "podinfo canary 60% -> 100%",
        f"podinfo-canary 0.2.1 -> {sandbox.SLOW_TAG}",
        "podinfo canary 0% -> 10%",
    ]
    rest = iter(subjects)
    in_order = all(any(subject == w for subject in rest) for w in wanted)
    rolled_back = (
        len(subjects) > 1 and subjects[-2] == wanted[-1] and subjects[-1].startswith("roll back podinfo canary")
    )
    return (
        in_order
        and rolled_back
        and result.quarantined.get("podinfo-canary") == sandbox.SLOW_TAG
        and applied.weight == 0
    )


def _quarantine(deps: Deps, policy_name: str) -> dict[str, str]:
    """The quarantined canary tags, read back from git the way the bot itself reads them."""
    with deps.workspace.checkout() as checkout:
        history = read_history(checkout.log(), policy_name)
    return {target: ", ".join(sorted(history.quarantined(target))) for target in ("podinfo-ga", "podinfo-canary")}


def _report(echo: Echo, cycle: int, elapsed: timedelta, outcome: CycleResult, result: DemoResult) -> None:
    minutes = int(elapsed.total_seconds() // 60)
    stamp = f"[cycle {cycle:2d} +{minutes // 60}h{minutes % 60:02d}m]"
    by_name = {p.name: p for p in outcome.plans}
    canaries = {o.name: o for o in outcome.canaries}
    if not outcome.deliveries:
        notes = [f"{o.name}: {o.decision.reason if o.decision else o.note}" for o in outcome.canaries] or [
            "nothing to change"
        ]
        echo(f"{stamp} no commit - {'; '.join(notes)}")
        return
    for delivery in outcome.deliveries:
        plan = by_name.get(delivery.name)
        result.commits.append((delivery.ref, delivery.subject))
        echo(f"{stamp} {delivery.ref[:7]} {delivery.subject}")
        if plan is not None:
            echo(f"{_INDENT}why: {_evidence(plan, canaries.get(plan.name))}")


def _finish(echo: Echo, result: DemoResult, bare: Path, started: float) -> None:
    echo("")
    echo(f"git log --oneline {sandbox.BRANCH}:")
    for line in log_oneline(bare, sandbox.BRANCH):
        echo(f"  {line}")
    if result.commits:
        last = result.commits[-1][0]
        trailers = [line for line in commit_message(bare, last).splitlines() if line.startswith(TRAILER_PREFIX)]
        echo(f"trailers of {last[:7]}: {'; '.join(trailers)}")
    echo("")
    echo(f"final VirtualService (in {sandbox.VIRTUAL_SERVICE_FILE} at the head of {sandbox.BRANCH}):")
    text = read_file(bare, sandbox.BRANCH, sandbox.VIRTUAL_SERVICE_FILE)
    document = next((d for d in text.split("\n---\n") if "kind: VirtualService" in d), text)
    for line in document.strip("\n").splitlines():
        echo(f"  {line}")
    echo("")
    quarantined = ", ".join(f"{k}={v}" for k, v in result.quarantined.items() if v) or "none"
    result.seconds = time.monotonic() - started
    verdict = "story complete" if result.completed else "story NOT complete"
    echo(
        f"{verdict}: {result.cycles} cycles, {len(result.commits)} commits, quarantined: {quarantined}, "
        f"final canary weight {result.final_weight}%; took {result.seconds:.1f} s"
    )
