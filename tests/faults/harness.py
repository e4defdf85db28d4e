"""Kill `gitbot` at chosen points of a cycle against the real loopback servers, run it again, judge convergence.

Owns: the fault scenarios (a seed repository, a policy, the command a person or scheduler runs), the
points where a run is interrupted (a progress stage plus a delay, or the n-th request the git server or the
GitHub fake receives, before or after it takes effect), running `gitbot` as a subprocess with its stderr on
a pseudo-terminal so that it prints its stages, and the checks that a killed-then-restarted run leaves the
environment branch, the bot's branches and the pull requests exactly as one uninterrupted run does.

Used by `bench/faults.py` (the whole sweep) and `tests/faults/` (a few fixed points). Only tests and
benchmarks import it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Literal, Protocol

import httpx

from gitbot.adapters.gitrepo import WORK_DIRECTORY
from tests.support.cli import coverage_env
from tests.support.github_fake import GitHubFake
from tests.support.gitserver import GitServer
from tests.support.images import push_image
from tests.support.prometheus import PrometheusServer, Scenario, SideProfile, start_prometheus
from tests.support.registry import RunningRegistry, push_tags, start_registry

ROOT = Path(__file__).resolve().parents[2]
POLICY = "faults"
BOT_NAME, BOT_EMAIL = "gitbot", "gitbot@example.test"
IMAGE_PATH = "acme/podinfo"
TAGS = ("1.0.0", "1.0.1", "1.0.2", "2.0.0", "2.0.1")
# A repository whose tag 1.0.2 was pushed twice: the digest pinned first, then the one the registry serves now.
PINNED_PATH, PINNED_TAG = "acme/pinned", "1.0.2"
RUN_TIMEOUT = 90.0
# Stage lines as `gitbot.commands.progress.Progress` draws them on a terminal: "gitbot: <policy>: <stage>...".
_STAGE = re.compile(rf"gitbot: {POLICY}: ([^\r\n\x1b]+?)\.\.\.")

Kind = Literal["stage", "git", "github"]
Phase = Literal["", "received", "handled"]
Action = Literal["kill", "push"]


# -- the world the runs happen in ------------------------------------------------------------------------


@dataclass
class World:
    """The shared servers of a sweep: git over smart HTTP, a registry with the podinfo tags, Prometheus
    with a healthy canary (namespace `healthy`) and a failing one (namespace `failing`), data around now."""

    root: Path
    git: GitServer
    registry: RunningRegistry
    prometheus: PrometheusServer
    # The digests `PINNED_PATH:PINNED_TAG` had: the first build's, then the rebuild's (served now).
    pins: tuple[str, str] = ("", "")

    @property
    def repository(self) -> str:
        return f"{self.registry.host}/{IMAGE_PATH}"

    @property
    def pinned_repository(self) -> str:
        return f"{self.registry.host}/{PINNED_PATH}"

    def stop(self) -> None:
        self.prometheus.stop()
        self.registry.stop()
        self.git.stop()


@contextlib.contextmanager
def world(root: Path) -> Iterator[World]:
    """Start the servers a sweep needs under `root`; stop them on exit."""
    root.mkdir(parents=True, exist_ok=True)
    git = GitServer(root / "git", quiet_disconnects=True)
    registry: RunningRegistry | None = None
    prometheus: PrometheusServer | None = None
    try:
        registry = start_registry(root / "registry")
        push_tags(registry.url, IMAGE_PATH, TAGS)
        with httpx.Client(base_url=registry.url, timeout=10, trust_env=False) as client:
            first = push_image(client, PINNED_PATH, PINNED_TAG, created=None, content="first build")
            rebuilt = push_image(client, PINNED_PATH, PINNED_TAG, created=None, content="rebuilt")
        # The bot judges at the wall clock's now: the data spans from well before now to hours after it.
        now = datetime.now(UTC).replace(microsecond=0)
        start, duration = now - timedelta(minutes=40), timedelta(hours=4)
        healthy = Scenario(namespace="healthy", start=start, duration=duration)
        failing = Scenario("failing", start, duration, canary=SideProfile(error_ratio=0.3))
        prometheus = start_prometheus(root / "prometheus", healthy, failing)
        yield World(root, git, registry, prometheus, (first, rebuilt))
    finally:
        if prometheus is not None:
            prometheus.stop()
        if registry is not None:
            registry.stop()
        git.stop()


# -- scenarios ---------------------------------------------------------------------------------------------


def deployment(name: str, image: str) -> str:
    return (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        f"metadata: {{name: {name}, namespace: test}}\n"
        "spec:\n"
        "  template:\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: podinfod\n"
        f"          image: {image}\n"
    )


def route(namespace: str, canary_weight: int) -> str:
    return (
        "apiVersion: networking.istio.io/v1beta1\n"
        "kind: VirtualService\n"
        f"metadata: {{name: podinfo, namespace: {namespace}}}\n"
        "spec:\n"
        "  hosts: [podinfo]\n"
        "  http:\n"
        "    - route:\n"
        "        - destination: {host: podinfo, subset: ga}\n"
        f"          weight: {100 - canary_weight}\n"
        "        - destination: {host: podinfo, subset: canary}\n"
        f"          weight: {canary_weight}\n"
    )


def bot_message(
    subject: str, action: str, target: str, old: str, new: str, plan: str, *, policy: str = POLICY, extra: str = ""
) -> str:
    """A commit message as the bot writes one, for history seeded before a scenario starts (`extra`: more
    trailer lines)."""
    return (
        f"gitbot({policy}): {subject}\n\nSeeded bot change.\n\n"
        f"Gitbot-Policy: {policy}\nGitbot-Action: {action}\nGitbot-Target: {target}\n"
        f"Gitbot-From: {old}\nGitbot-To: {new}\nGitbot-Plan-Id: {plan}\n{extra}"
    )


SeedCommit = tuple[Mapping[str, str], str]  # files, message (the bot's; "" for a person's commit by hand)
# A bot commit on the earlier environment's branch (`staging`): files, message, how long ago it landed.
StagingCommit = tuple[Mapping[str, str], str, timedelta]
STAGING = "staging"


@dataclass(frozen=True)
class State:
    """One value a branch had: its commit, whether the bot made that commit, and the files of its tree."""

    sha: str
    by_bot: bool
    files: Mapping[str, str]


# What must hold in every value a branch had since the scenario started, oldest first (the first is the value
# before the run: the seed's head for main); returns what broke it, by commit.
Invariant = Callable[[list[State]], list[str]]


@dataclass(frozen=True)
class PersonChange:
    """What a person pushes to the environment branch while a cycle runs; `survives`: it is expected to
    stay in the final tree (False when the bot's change is meant to overwrite it, e.g. a rollback)."""

    files: Mapping[str, str]
    message: str
    survives: bool = True


NOTES = PersonChange(
    {"clusters/apps/notes.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes, namespace: test}\n"},
    "docs: a note pushed by a person",
)


@dataclass(frozen=True)
class FaultScenario:
    """One thing the bot is asked to do: seed files and bot history, policy parts, the command."""

    name: str
    title: str
    files: Mapping[str, str]
    command: tuple[str, ...] = ("once",)
    mode: Literal["commit", "pull-request"] = "commit"
    canary_namespace: str | None = None
    seed: tuple[SeedCommit, ...] = ()
    person: PersonChange = NOTES
    # Exit codes the run after a kill may end with (a repeated `gitbot rollback` may say there is nothing left).
    recovery_codes: tuple[int, ...] = (0,)
    # Files whose content at the end is known whatever happened before (e.g. a rolled-back route at 0%).
    expect: Mapping[str, str] = field(default_factory=dict)
    # Text that the message of one of the bot's new commits on main must contain, every piece in the same one.
    message_says: tuple[str, ...] = ()
    # More fields of an image policy, by image name (`ga`, `canary`), and the GA image's repository path.
    image_fields: Mapping[str, str] = field(default_factory=dict)
    ga_path: str = IMAGE_PATH
    # More fields of the canary (e.g. `onNewImage: restart`), and its dwell at a step.
    canary_fields: tuple[str, ...] = ()
    canary_interval: str = "1s"
    # The earlier environment's history on its own branch, read by a promotion gate (policy `staging`).
    staging: tuple[StagingCommit, ...] = ()
    # Checked over every value main and the bot's branches had, in the reference run and in every case.
    invariant: Invariant | None = None
    # One more `gitbot once` after the run (and after the recovery run). "nothing": it must change nothing;
    # "next": what it changes is part of the expected end (e.g. the first step of a restarted rollout).
    settle: Literal["", "nothing", "next"] = ""


def scenarios(world: World) -> dict[str, FaultScenario]:
    """The scenarios of the sweep, by name, over the registry of `world`."""
    repository = world.repository
    old_images = {
        "clusters/apps/ga.yaml": deployment("podinfo-ga", f"{repository}:1.0.0"),
        "clusters/apps/canary.yaml": deployment("podinfo-canary", f"{repository}:2.0.0"),
    }
    newest_images = {
        "clusters/apps/ga.yaml": deployment("podinfo-ga", f"{repository}:1.0.2"),
        "clusters/apps/canary.yaml": deployment("podinfo-canary", f"{repository}:2.0.1"),
    }
    step = bot_message("podinfo canary 0% -> 10%", "canary-step", "podinfo", "0", "10", "seedstep")
    hand_step = bot_message("podinfo canary 5% -> 10%", "canary-step", "podinfo", "5", "10", "seedhand")
    ga_first = bot_message("ga 1.0.0 -> 1.0.1", "image-update", "ga", "1.0.0", "1.0.1", "seedga01")
    ga_second = bot_message("ga 1.0.1 -> 1.0.2", "image-update", "ga", "1.0.1", "1.0.2", "seedga02")
    ga_at = {tag: {"clusters/apps/ga.yaml": deployment("podinfo-ga", f"{repository}:{tag}")} for tag in TAGS}
    items = [
        FaultScenario("commit", "commit mode: two image updates", old_images),
        FaultScenario("pull-request", "pull-request mode: two image updates", old_images, mode="pull-request"),
        FaultScenario(
            "canary-step",
            "a canary step 10% -> 60% (healthy analysis)",
            {**newest_images, "clusters/mesh/route.yaml": route("healthy", 10)},
            canary_namespace="healthy",
        ),
        FaultScenario(
            "canary-rollback",
            "a failing canary rolled back by revert",
            {**newest_images, "clusters/mesh/route.yaml": route("failing", 0)},
            canary_namespace="failing",
            seed=(({"clusters/mesh/route.yaml": route("failing", 10)}, step),),
            # A weight a person sets by hand while the rollback runs: the rollback still ends at 0 percent.
            person=PersonChange(
                {"clusters/mesh/route.yaml": route("failing", 20)}, "ops: canary to 20% by hand", survives=False
            ),
            expect={"clusters/mesh/route.yaml": route("failing", 0)},
        ),
        FaultScenario(
            "canary-rollback-hand-set",
            "a failing canary stepped from 5% set by hand: reverted, then to 0% in one commit",
            {**newest_images, "clusters/mesh/route.yaml": route("failing", 0)},
            canary_namespace="failing",
            seed=(
                ({"clusters/mesh/route.yaml": route("failing", 5)}, ""),
                ({"clusters/mesh/route.yaml": route("failing", 10)}, hand_step),
            ),
            expect={"clusters/mesh/route.yaml": route("failing", 0)},
            # The revert of the bot's step restores the 5%; the same commit sets it to 0% and says so.
            message_says=("This reverts commit ", "restores the canary weight from before them, 5%", "to 0%"),
        ),
        FaultScenario(
            "manual-rollback",
            "`gitbot rollback ga` run by hand",
            {**newest_images, **ga_at["1.0.0"]},
            command=("rollback", "ga"),
            seed=((ga_at["1.0.1"], ga_first), (ga_at["1.0.2"], ga_second)),
            recovery_codes=(0, 2),
        ),
    ]
    items += newer_scenarios(world)
    return {item.name: item for item in items}


GA_FILE, CANARY_FILE, ROUTE_FILE = "clusters/apps/ga.yaml", "clusters/apps/canary.yaml", "clusters/mesh/route.yaml"


def image_of(state: State, path: str) -> str:
    match = re.search(r"image: (\S+)", state.files.get(path, ""))
    return match.group(1) if match else ""


def canary_weight(state: State) -> int:
    match = re.search(r"subset: canary\}\n\s+weight: (\d+)", state.files.get(ROUTE_FILE, ""))
    return int(match.group(1)) if match else 0


def _bot_states(states: list[State]) -> list[State]:
    """The values the bot gave the branch: every one but the first (the value before the run), made by it."""
    return [state for state in states[1:] if state.by_bot]


def never_lands(*references: str) -> Invariant:
    """No value the bot gives the branch runs any of `references` (images a gate holds back)."""

    def check(states: list[State]) -> list[str]:
        return [
            f"{state.sha[:8]} runs {reference}, which its gate holds back"
            for state in _bot_states(states)
            for reference in references
            if reference in (image_of(state, GA_FILE), image_of(state, CANARY_FILE))
        ]

    return check


def pinned_only_to(repository: str, tag: str, digest: str) -> Invariant:
    """Every GA reference the bot writes that pins a digest pins the one the registry serves for its tag (a
    branch for another image carries main's reference as it was)."""

    def check(states: list[State]) -> list[str]:
        problems = []
        for state in _bot_states(states):
            image = image_of(state, GA_FILE)
            written = image != image_of(states[0], GA_FILE)
            if written and "@" in image and image != f"{repository}:{tag}@{digest}":
                problems.append(f"{state.sha[:8]} pins {image}, not the digest {tag} has ({digest})")
        return problems

    return check


def rolled_back_to(repository: str, good: str, bad: str) -> Invariant:
    """Once the bot rolls the canary back, the bad tag takes no traffic and is never put back after the good one."""

    def check(states: list[State]) -> list[str]:
        problems, returned = [], False
        for state in _bot_states(states):
            image = image_of(state, CANARY_FILE)
            if image == f"{repository}:{bad}" and canary_weight(state) > 0:
                problems.append(f"{state.sha[:8]} sends {canary_weight(state)}% to the bad tag {bad}")
            if image == f"{repository}:{bad}" and returned:
                problems.append(f"{state.sha[:8]} puts the quarantined tag {bad} back")
            returned = returned or image == f"{repository}:{good}"
        return problems

    return check


def restarted_at_zero(repository: str, new: str, first_step: int) -> Invariant:
    """A new canary tag comes in at 0%, and its rollout starts again from the first step: it never takes
    the old image's weight, and no later step comes before its own dwell (longer than any case)."""

    def check(states: list[State]) -> list[str]:
        problems, restarted = [], False
        for state in _bot_states(states):
            if image_of(state, CANARY_FILE) != f"{repository}:{new}":
                continue
            weight = canary_weight(state)
            if weight == 0:
                restarted = True
            elif not restarted or weight != first_step:
                problems.append(f"{state.sha[:8]} runs the new tag {new} at {weight}% without its own dwell")
        return problems

    return check


def newer_scenarios(world: World) -> list[FaultScenario]:
    """Promotion gates, digest re-pins, a rollback that returns the canary image, and a restart on a new canary
    image; each in commit and in pull-request mode, each followed by one more run that must change nothing."""
    repository, pinned = world.repository, world.pinned_repository
    ga = {tag: {GA_FILE: deployment("podinfo-ga", f"{repository}:{tag}")} for tag in TAGS}
    canary = {tag: {CANARY_FILE: deployment("podinfo-canary", f"{repository}:{tag}")} for tag in TAGS}
    staging = (
        (
            ga["1.0.1"],
            bot_message("ga 1.0.0 -> 1.0.1", "image-update", "ga", "1.0.0", "1.0.1", "stage1", policy=STAGING),
            timedelta(hours=5),
        ),
        (
            ga["1.0.2"],
            bot_message("ga 1.0.1 -> 1.0.2", "image-update", "ga", "1.0.1", "1.0.2", "stage2", policy=STAGING),
            timedelta(hours=4),
        ),
        # A person reverted 1.0.2 in staging: it is soaked, yet rolled back there.
        (ga["1.0.1"], f'Revert "gitbot({STAGING}): ga 1.0.1 -> 1.0.2"\n\nIt broke staging.\n', timedelta(hours=3)),
        # 2.0.1 landed in staging half an hour ago: not soaked.
        (
            canary["2.0.1"],
            bot_message("canary 2.0.0 -> 2.0.1", "image-update", "canary", "2.0.0", "2.0.1", "stage3", policy=STAGING),
            timedelta(minutes=30),
        ),
    )
    gate = "promotion: {{after: {0}/{1}, soak: 2h}}"
    first, rebuilt = world.pins
    step = bot_message("podinfo canary 0% -> 10%", "canary-step", "podinfo", "0", "10", "seedstep")
    bad_image = bot_message("canary 2.0.0 -> 2.0.1", "image-update", "canary", "2.0.0", "2.0.1", "seedbad")
    step60 = bot_message("podinfo canary 10% -> 60%", "canary-step", "podinfo", "10", "60", "seedstep60")
    items = []
    for mode in ("commit", "pull-request"):
        suffix = "" if mode == "commit" else "-pull-request"
        in_commits = mode == "commit"
        items += [
            FaultScenario(
                f"promotion{suffix}",
                f"{mode} mode: promotion gates on staging (soak 2h): the soaked tag only",
                {**ga["1.0.0"], **canary["2.0.0"]},
                mode=mode,
                image_fields={"ga": gate.format(STAGING, "ga"), "canary": gate.format(STAGING, "canary")},
                staging=staging,
                # 1.0.2 was rolled back in staging, 2.0.1 has not soaked there.
                expect={**ga["1.0.1"], **canary["2.0.0"]} if in_commits else {},
                invariant=never_lands(f"{repository}:1.0.2", f"{repository}:2.0.1"),
                settle="nothing",
            ),
            FaultScenario(
                f"digest-repin{suffix}",
                f"{mode} mode: a pinned tag pushed again is pinned again, beside an image update",
                {GA_FILE: deployment("podinfo-ga", f"{pinned}:{PINNED_TAG}@{first}"), **canary["2.0.0"]},
                mode=mode,
                image_fields={"ga": "digest: pin"},
                ga_path=PINNED_PATH,
                expect={GA_FILE: deployment("podinfo-ga", f"{pinned}:{PINNED_TAG}@{rebuilt}"), **canary["2.0.1"]}
                if in_commits
                else {},
                message_says=(f"{PINNED_TAG} now serves {rebuilt} (was {first})",) if in_commits else (),
                invariant=pinned_only_to(pinned, PINNED_TAG, rebuilt),
                settle="nothing",
            ),
            FaultScenario(
                f"rollback-image{suffix}",
                f"{mode} mode: a failing canary rolled back to the tag it ran before, the bad one quarantined",
                {**ga["1.0.2"], **canary["2.0.0"], ROUTE_FILE: route("failing", 0)},
                mode=mode,
                canary_namespace="failing",
                seed=((canary["2.0.1"], bad_image), ({ROUTE_FILE: route("failing", 10)}, step)),
                person=PersonChange({ROUTE_FILE: route("failing", 20)}, "ops: canary to 20% by hand", survives=False),
                # Safety actions go straight to the branch in both modes.
                expect={**canary["2.0.0"], ROUTE_FILE: route("failing", 0)},
                invariant=rolled_back_to(repository, "2.0.0", "2.0.1"),
                settle="nothing",
            ),
            FaultScenario(
                f"restart{suffix}",
                f"{mode} mode: a new canary tag at 60% comes with the weights at 0% (onNewImage: restart)",
                {**ga["1.0.2"], **canary["2.0.0"], ROUTE_FILE: route("healthy", 0)},
                mode=mode,
                canary_namespace="healthy",
                seed=(({ROUTE_FILE: route("healthy", 10)}, step), ({ROUTE_FILE: route("healthy", 60)}, step60)),
                canary_fields=("onNewImage: restart",),
                # The dwell outlasts the case: a step the run after the restart took would show.
                canary_interval="1h",
                # The run after it takes the first step of the new rollout (from 0%, no dwell before it).
                expect={**canary["2.0.1"], ROUTE_FILE: route("healthy", 10)} if in_commits else {},
                message_says=("Gitbot-Restart: podinfo",) if in_commits else (),
                invariant=restarted_at_zero(repository, "2.0.1", 10),
                settle="next",
            ),
        ]
    return items


def policy_text(
    scenario: FaultScenario,
    git_url: str,
    world: World,
    github: GitHubFake | None,
    *,
    name: str = POLICY,
    branch: str = "main",
) -> str:
    repo = json.dumps(world.repository)
    ga_repo = json.dumps(f"{world.registry.host}/{scenario.ga_path}")
    fields = {image: f"       {text},\n" for image, text in scenario.image_fields.items()}
    lines = [
        "apiVersion: gitbot.dev/v1alpha1",
        "kind: Policy",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  git: {{url: {json.dumps(git_url)}, branch: {branch}, paths: [clusters], tokenEnv: GIT_TOKEN,",
        f"        username: {world.git.username}, author: {{name: {BOT_NAME}, email: {BOT_EMAIL}}}}}",
        "  schedule: {interval: 1m}",
    ]
    if scenario.mode == "pull-request":
        assert github is not None
        lines += [
            "  delivery:",
            "    mode: pull-request",
            f"    github: {{repository: {github.full_name}, tokenEnv: GH_TOKEN, apiUrl: {json.dumps(github.base_url)},",
            "             labels: [gitbot]}",
        ]
    lines += [
        "  images:",
        f"    - {{name: ga, repository: {ga_repo}, filter: '1.0.*',\n{fields.get('ga', '')}"
        "       targets: [{resource: Deployment/test/podinfo-ga, container: podinfod}]}",
        f"    - {{name: canary, repository: {repo}, filter: '2.0.*',\n{fields.get('canary', '')}"
        "       targets: [{resource: Deployment/test/podinfo-canary, container: podinfod}]}",
    ]
    if scenario.canary_namespace is not None:
        lines += [
            "  canaries:",
            "    - name: podinfo",
            f"      route: VirtualService/{scenario.canary_namespace}/podinfo",
            "      stable: {subset: ga}",
            "      canary: {subset: canary}",
            "      image: canary",
            "      steps: [10, 60, 100]",
            f"      interval: {scenario.canary_interval}",
            "      onFailure: rollback",
            *(f"      {line}" for line in scenario.canary_fields),
            "      analysis:",
            f"        prometheus: {{url: {json.dumps(world.prometheus.url)}}}",
            "        window: 5m",
            "        minRequests: 10",
            "        stableWorkload: podinfo-ga",
            "        canaryWorkload: podinfo-canary",
            "        checks:",
            "          - {name: success-rate, min: 99}",
            "          - {name: latency-p99, maxRatio: 1.5}",
        ]
    return "\n".join(lines) + "\n"


# -- fault points ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPoint:
    """Where a run is interrupted: the `nth` progress stage `at` (then `delay` seconds later), or the `nth`
    request `at` (`METHOD path`, see `request_label`) to the git server or the GitHub fake, at `phase`."""

    kind: Kind
    at: str
    nth: int = 1
    phase: Phase = ""
    delay: float = 0.0

    @property
    def label(self) -> str:
        if not self.at:
            return "no point: the uninterrupted run"
        nth = f" #{self.nth}" if self.nth > 1 else ""
        if self.kind == "stage":
            return f"stage {self.at}{nth} +{int(self.delay * 1000)}ms"
        return f"{self.kind} {self.at}{nth} {self.phase}"


def request_label(kind: Kind, method: str, path: str) -> str:
    """A request's name, the same in every case: the repository name and numbers are left out."""
    if kind == "git":
        service = re.search(r"service=([\w-]+)", path)
        tail = path.split("?", 1)[0].split(".git/", 1)[-1]
        return f"{method} {tail}" + (f"?{service.group(1)}" if service else "")
    api = path.split("?", 1)[0].removeprefix("/api/v3")
    api = re.sub(r"^/repos/[^/]+/[^/]+", "", api)
    return f"{method} {re.sub(r'/[0-9]+(?=/|$)', '/N', api) or '/'}"


# -- running gitbot ----------------------------------------------------------------------------------------

# "subprocess": `python -m gitbot`, a fresh interpreter per run. "fork": forked from a server process that
# has imported gitbot already (multiprocessing's forkserver), the same CLI without the interpreter's start-up.
Launcher = Literal["subprocess", "fork"]


class Running(Protocol):
    """A started run: its process id (also its process group's) and its exit status."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class _Forked:
    def __init__(self, process: BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("gitbot", timeout or 0)
        return self._process.exitcode


def _forked_main(args: list[str], env: dict[str, str], cwd: str, terminal: str, stdout: str) -> None:
    """The body of a forked run: a session of its own, stderr on the terminal, then gitbot's CLI."""
    os.setsid()
    err = os.open(terminal, os.O_RDWR | os.O_NOCTTY)
    out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((devnull, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["gitbot", *args]
    from gitbot.cli import main

    try:
        main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


_forkserver = multiprocessing.get_context("forkserver")
_forkserver.set_forkserver_preload(["gitbot.cli", "tests.faults.harness"])


def launch(launcher: Launcher, args: list[str], env: dict[str, str], cwd: Path, terminal: int, stdout: Path) -> Running:
    """Start `gitbot ARGS` in a new session with stderr on the terminal `terminal` (the pseudo-terminal's
    other end, a file descriptor) and stdout into the file `stdout`."""
    if launcher == "fork":
        name = os.ttyname(terminal)
        process = _forkserver.Process(target=_forked_main, args=(args, env, str(cwd), name, str(stdout)))
        process.start()
        return _Forked(process)
    with stdout.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gitbot", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=terminal,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


@dataclass
class RunResult:
    code: int | None
    output: str
    stages: list[str]
    git_requests: list[str]
    github_requests: list[str]
    fired: bool = False
    seconds: float = 0.0

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


@dataclass
class Case:
    """One scenario run in its own repository, GitHub fake, cache and temporary directory."""

    world: World
    scenario: FaultScenario
    directory: Path
    repo: str = ""
    seed_head: str = ""
    github: GitHubFake | None = None
    launcher: Launcher = "subprocess"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runs: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for sub in ("tmp", "home", "cache", "policies"):
            (self.directory / sub).mkdir(exist_ok=True)
        git = self.world.git
        self.repo = git.unique_name(self.scenario.name)
        git.create_repo(self.repo, self.scenario.files)
        # Every value the branch ever had is kept, so that a force-push shows however quickly it is undone.
        git.git(self.repo, "config", "core.logAllRefUpdates", "always")
        for files, message in self.scenario.seed:
            if message:
                git.commit_as_other(self.repo, files, message, author=(BOT_NAME, BOT_EMAIL))
            else:
                git.commit_as_other(self.repo, files, "ops: canary weight set by hand")
        if self.scenario.staging:
            self._seed_staging()
        self.seed_head = git.head(self.repo) or ""
        if self.scenario.mode == "pull-request":
            self.github = GitHubFake(quiet_disconnects=True)
        text = policy_text(self.scenario, git.url_for(self.repo), self.world, self.github)
        (self.directory / "policies" / f"{POLICY}.yaml").write_text(text, encoding="utf-8")

    def _seed_staging(self) -> None:
        """The earlier environment: branch `staging` from the first commit, the bot's history there (dated), and
        its policy (same images, no gates), which the gate reads and nothing runs."""
        git = self.world.git
        first = git.git(self.repo, "rev-list", "--max-parents=0", "main").split()[0]
        git.git(self.repo, "branch", STAGING, first)
        now = datetime.now(UTC)
        for files, message, age in self.scenario.staging:
            by_bot = "Gitbot-Policy:" in message
            author = (BOT_NAME, BOT_EMAIL) if by_bot else ("Staging Operator", "ops@example.test")
            git.commit_as_other(self.repo, files, message, branch=STAGING, author=author, date=now - age)
        earlier = FaultScenario(STAGING, "", {}, canary_namespace=None)
        text = policy_text(earlier, git.url_for(self.repo), self.world, None, name=STAGING, branch=STAGING)
        (self.directory / "policies" / f"{STAGING}.yaml").write_text(text, encoding="utf-8")

    def close(self) -> None:
        if self.github is not None:
            self.github.stop()

    def __enter__(self) -> Case:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tmp(self) -> Path:
        return self.directory / "tmp"

    @property
    def cache(self) -> Path:
        return self.directory / "cache"

    def environment(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **coverage_env(),
            "HOME": str(self.directory / "home"),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmp),
            "GITBOT_CACHE_DIR": str(self.cache),
            "GIT_CONFIG_NOSYSTEM": "1",
            "PYTHONPATH": str(ROOT),
            "GIT_TOKEN": self.world.git.token,
            "GITBOT_GITHUB_THROTTLE": "0",
        }
        if self.github is not None:
            env["GH_TOKEN"] = self.github.token
        return env

    def person_push(self) -> str:
        change = self.scenario.person
        return self.world.git.commit_as_other(self.repo, change.files, change.message)

    def run(self, point: FaultPoint | None = None, action: Action = "kill") -> RunResult:
        """Run the scenario's command once; at `point`, kill its process group or push as a person."""
        args = [*self.scenario.command, "--policy", POLICY, "--policies", str(self.directory / "policies")]
        master, slave = pty.openpty()
        started = time.monotonic()
        self._runs += 1
        stdout = self.directory / f"stdout-{self._runs}.txt"
        process = launch(self.launcher, args, self.environment(), self.directory, slave, stdout)
        if self.launcher == "subprocess":
            # The subprocess holds its own copy. A forked run opens the terminal by name once it starts, so
            # there this end stays open until the run is over (the terminal would be gone otherwise).
            os.close(slave)
        result = RunResult(None, "", [], [], [])
        done = threading.Event()

        def fire() -> None:
            with self._lock:
                if result.fired or done.is_set():
                    return
                result.fired = True
                if action == "kill":
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                else:
                    self.person_push()

        def hook_for(kind: Kind, seen: list[str]) -> Callable[[str, str, str], bool]:
            def hook(phase: str, method: str, path: str) -> bool:
                if kind == "git" and f"/{self.repo}.git/" not in path:
                    return True
                label = request_label(kind, method, path)
                if phase == "received":
                    seen.append(label)
                if point is None or point.kind != kind or point.at != label or point.phase != phase:
                    return True
                if seen.count(label) != point.nth or result.fired:
                    return True
                fire()
                # A killed client's request goes no further (at "received": git never runs it).
                return action != "kill"

            return hook

        self.world.git.request_hook = hook_for("git", result.git_requests)
        if self.github is not None:
            self.github.hook = hook_for("github", result.github_requests)
        deadline: float | None = None
        buffer = ""
        scanned = 0
        out = b""
        try:
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    deadline = None
                    fire()
                if now - started > RUN_TIMEOUT:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    buffer += f"\n[fault harness: no end after {RUN_TIMEOUT:.0f}s, killed]\n"
                    break
                wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - now))
                ready, _, _ = select.select([master], [], [], wait)
                if not ready:
                    if process.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    # Every holder of the terminal is gone: the run has ended (or was killed).
                    process.wait(timeout=RUN_TIMEOUT)
                    break
                buffer += chunk.decode("utf-8", "replace")
                for match in _STAGE.finditer(buffer, scanned):
                    scanned = match.end()
                    stage = match.group(1)
                    result.stages.append(stage)
                    hit = point is not None and point.kind == "stage" and point.at == stage
                    if hit and point is not None and result.stages.count(stage) == point.nth:
                        deadline = time.monotonic() + point.delay
                        if point.delay == 0:
                            deadline = None
                            fire()
            with contextlib.suppress(ProcessLookupError):
                if process.poll() is None and result.fired and action == "kill":
                    os.killpg(process.pid, signal.SIGKILL)
            result.code = process.wait(timeout=RUN_TIMEOUT)
            out = stdout.read_bytes() if stdout.exists() else b""
        finally:
            done.set()
            self.world.git.request_hook = None
            if self.github is not None:
                self.github.hook = None
            os.close(master)
            if self.launcher != "subprocess":
                os.close(slave)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=RUN_TIMEOUT)
        result.seconds = time.monotonic() - started
        result.output = out.decode("utf-8", "replace") + re.sub(r"\r\x1b\[K", "\n", buffer)
        return result

    # -- what the run left behind ---------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        git, name = self.world.git, self.repo
        head = git.head(name) or ""
        bot = [
            c.subject
            for c in git.log(name, max_count=200)
            if c.author_email == BOT_EMAIL and c.sha != self.seed_head and not self._seeded(c.sha)
        ]
        branches = {b: tree(git, name, b) for b in git.branches(name) if b.startswith("gitbot/")}
        pulls: list[tuple[str, str, str, tuple[str, ...]]] = []
        if self.github is not None:
            pulls = sorted((p.head, p.title, p.state, tuple(sorted(p.labels))) for p in self.github.list_pulls())
        return Snapshot(head, tree(git, name, "main"), sorted(bot), branches, pulls)

    def _seeded(self, sha: str) -> bool:
        """True for commits that were on the branch before the run (the seed's bot history)."""
        return self.is_ancestor(sha, self.seed_head)

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self.world.git.git(self.repo, "merge-base", "--is-ancestor", older, newer)
        except RuntimeError:
            return False
        return True

    def bot_shas(self) -> list[str]:
        """The bot's commits on main made after the seed."""
        log = self.world.git.log(self.repo, max_count=200)
        return [c.sha for c in log if c.author_email == BOT_EMAIL and not self._seeded(c.sha)]

    def history_problems(self) -> list[str]:
        """Every move of the environment branch must be a fast-forward of the one before (no force-push)."""
        git, name = self.world.git, self.repo
        values = git.git(name, "reflog", "show", "--format=%H", "refs/heads/main").split()
        problems = []
        for newer, older in itertools.pairwise(values):
            try:
                git.git(name, "merge-base", "--is-ancestor", older, newer)
            except RuntimeError:
                problems.append(f"main moved from {older[:8]} to {newer[:8]}, not a descendant (force-pushed)")
        return problems

    def state_problems(self) -> list[str]:
        """The scenario's invariant over every value main had since the seed and every value of each bot branch."""
        invariant = self.scenario.invariant
        if invariant is None:
            return []
        git, name = self.world.git, self.repo
        problems = []
        for branch in ["main", *sorted(b for b in git.branches(name) if b.startswith("gitbot/"))]:
            values = git.git(name, "reflog", "show", "--format=%H", f"refs/heads/{branch}").split()[::-1]
            if branch == "main" and self.seed_head in values:
                values = values[len(values) - values[::-1].index(self.seed_head) :]
            # Each line starts from the seed's head: main's value before the run, where a bot branch came from.
            values = [self.seed_head, *values]
            shas = [sha for index, sha in enumerate(values) if index == 0 or values[index - 1] != sha]
            problems += [f"{branch}: {problem}" for problem in invariant([self.state(sha) for sha in shas])]
        return problems

    def state(self, sha: str) -> State:
        git, name = self.world.git, self.repo
        files = {path: git.git(name, "cat-file", "blob", blob) for path, blob in tree(git, name, sha).items()}
        author = git.git(name, "log", "-1", "--format=%ae", sha).strip()
        return State(sha, author == BOT_EMAIL, files)

    def message_problems(self) -> list[str]:
        """The scenario's `message_says` must all be in the message of one of the bot's new commits on main."""
        says = self.scenario.message_says
        if not says:
            return []
        messages = [self.world.git.message(self.repo, sha) for sha in self.bot_shas()]
        if any(all(text in message for text in says) for message in messages):
            return []
        return [f"bot commits on main: no message says all of {list(says)}"]

    def leftovers(self) -> list[str]:
        """Work directories and checkouts the bot left behind: anything in its TMPDIR or in the cache's work
        directory (`<cache>/git/work/`, where a cycle's worktree and its lock file live), any other entry of
        the git cache that is neither a cache repository nor its lock, any worktree still registered there."""
        found = [f"$TMPDIR/{p.name}" for p in sorted(self.tmp.iterdir())]
        git_cache = self.cache / "git"
        work = git_cache / WORK_DIRECTORY
        if work.is_dir():
            found += [f"cache/git/{WORK_DIRECTORY}/{p.name}" for p in sorted(work.iterdir())]
        if git_cache.is_dir():
            for entry in sorted(git_cache.iterdir()):
                if entry == work or (entry.name.endswith(".lock") and entry.is_file()):
                    continue
                if entry.is_dir() and (entry / "HEAD").is_file() and (entry / "objects").is_dir():
                    listed = subprocess.run(
                        ["git", "--git-dir", str(entry), "worktree", "list", "--porcelain"],
                        capture_output=True,
                        text=True,
                        check=False,
                    ).stdout
                    extra = [line[9:] for line in listed.splitlines() if line.startswith("worktree ")][1:]
                    found += [f"registered worktree {path}" for path in extra]
                    continue
                if entry.is_dir() and not any(entry.iterdir()):
                    continue
                found.append(f"cache/git/{entry.name}")
        return found


def blob_of(git: GitServer, name: str, text: str) -> str:
    """The blob sha git gives `text` (nothing is written)."""
    return git.git(name, "hash-object", "--stdin", input_text=text).strip()


def tree(git: GitServer, name: str, ref: str) -> dict[str, str]:
    """path -> blob sha of `ref` in repository `name`."""
    out = git.git(name, "ls-tree", "-r", ref)
    entries = {}
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        entries[path] = meta.split()[2]
    return entries


@dataclass(frozen=True)
class Snapshot:
    """The state a run leaves: the branch head and tree, the bot's new commits (subjects), the bot's branches
    (their trees) and every pull request (head, title, state, labels)."""

    head: str
    tree: dict[str, str]
    bot_commits: list[str]
    branches: dict[str, dict[str, str]]
    pulls: list[tuple[str, str, str, tuple[str, ...]]]


# -- judging ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One case: what was done at which point, and every way the end state differs from the reference."""

    scenario: str
    point: FaultPoint
    action: Action
    interrupted: bool
    problems: tuple[str, ...]
    seconds: float

    @property
    def held(self) -> bool:
        return not self.problems


def _diff_tree(expected: Mapping[str, str], actual: Mapping[str, str], what: str) -> list[str]:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p])
    out = []
    if missing:
        out.append(f"{what}: missing {', '.join(missing)}")
    if extra:
        out.append(f"{what}: unexpected {', '.join(extra)}")
    if changed:
        out.append(f"{what}: content differs in {', '.join(changed)}")
    return out


def _diff_counts(expected: list[str], actual: list[str], what: str) -> list[str]:
    want, got = Counter(expected), Counter(actual)
    out = []
    for item in sorted(set(want) | set(got)):
        if want[item] != got[item]:
            out.append(f"{what} {item!r}: {got[item]} (expected {want[item]})")
    return out


def judge(
    case: Case,
    reference: Snapshot,
    *,
    person: str | None = None,
    leftovers: bool = True,
) -> list[str]:
    """How the case's end state differs from `reference` (an uninterrupted run); [] when it converged.

    With `person` (a sha the person pushed), their commit must stay on the branch and their files in the
    tree unless the scenario says the bot overwrites them. `leftovers` also checks for abandoned work dirs.
    """
    now = case.snapshot()
    git = case.world.git
    problems: list[str] = []
    expected_tree = dict(reference.tree)
    expected_tree.update({path: blob_of(git, case.repo, text) for path, text in case.scenario.expect.items()})
    if person is not None:
        if not case.is_ancestor(person, "main"):
            problems.append(f"the person's commit {person[:8]} is no longer on main")
        # The person's files stay unless the bot's change is meant to overwrite them and came after them.
        if case.scenario.person.survives or all(case.is_ancestor(sha, person) for sha in case.bot_shas()):
            theirs = tree(git, case.repo, person)
            expected_tree.update({path: theirs[path] for path in case.scenario.person.files})
    problems += _diff_tree(expected_tree, now.tree, "main")
    problems += _diff_counts(reference.bot_commits, now.bot_commits, "bot commits on main")
    problems += case.history_problems()
    problems += case.message_problems()
    problems += case.state_problems()
    if set(reference.branches) != set(now.branches):
        problems.append(f"bot branches {sorted(now.branches)} (expected {sorted(reference.branches)})")
    for branch, files in reference.branches.items():
        if branch in now.branches:
            got = now.branches[branch]
            if person is not None:
                # A pull request's branch starts from the head the cycle saw, with or without the person's file.
                got = {path: blob for path, blob in got.items() if path in files}
            problems += _diff_tree(files, got, f"branch {branch}")
    want_pulls = [" | ".join((p[0], p[1], p[2], ",".join(p[3]))) for p in reference.pulls]
    got_pulls = [" | ".join((p[0], p[1], p[2], ",".join(p[3]))) for p in now.pulls]
    problems += _diff_counts(want_pulls, got_pulls, "pull requests")
    open_heads = [p[0] for p in now.pulls if p[2] == "open"]
    problems += [f"{n} open pull requests for {head}" for head, n in Counter(open_heads).items() if n > 1]
    if leftovers:
        problems += [f"left behind: {item}" for item in case.leftovers()]
    return problems


# -- reference runs and cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run of a scenario: the state it leaves and the stages and requests it went through."""

    snapshot: Snapshot
    stages: tuple[str, ...]
    git_requests: tuple[str, ...]
    github_requests: tuple[str, ...]
    seconds: float
    # How the uninterrupted run itself misses what the scenario expects (then every case misses it too).
    problems: tuple[str, ...] = ()


def reference_run(
    world: World, scenario: FaultScenario, directory: Path, *, launcher: Launcher = "subprocess"
) -> Reference:
    with Case(world, scenario, directory, launcher=launcher) as case:
        result = case.run()
        if result.code != 0:
            raise RuntimeError(f"reference run of {scenario.name} failed ({result.code}):\n{result.output[-3000:]}")
        problems = []
        if scenario.settle:
            done = case.snapshot()
            settled = case.run()
            if settled.code != 0 or (scenario.settle == "nothing" and case.snapshot() != done):
                problems.append(f"the run after the uninterrupted run did more (exit {settled.code})")
        snapshot = case.snapshot()
        problems += [f"left behind: {item}" for item in case.leftovers()] + case.history_problems()
        problems += case.message_problems()
        problems += case.state_problems()
        problems += _diff_tree(
            {path: blob_of(world.git, case.repo, text) for path, text in scenario.expect.items()},
            {path: blob for path, blob in snapshot.tree.items() if path in scenario.expect},
            "main",
        )
        return Reference(
            snapshot,
            tuple(result.stages),
            tuple(result.git_requests),
            tuple(result.github_requests),
            result.seconds,
            tuple(problems),
        )


def run_case(
    world: World,
    scenario: FaultScenario,
    reference: Reference,
    point: FaultPoint,
    directory: Path,
    *,
    action: Action = "kill",
    leftovers: bool = True,
    launcher: Launcher = "subprocess",
) -> Outcome:
    """Interrupt a run at `point` (kill it, or push as a person), run again to completion when killed, judge."""
    started = time.monotonic()
    with Case(world, scenario, directory, launcher=launcher) as case:
        first = case.run(point, action)
        problems: list[str] = []
        person: str | None = None
        if action == "push":
            person = _person_sha(case) if first.fired else None
            if person is None:
                problems.append("the point was never reached: no person's push happened")
            if first.code != 0:
                problems.append(f"the cycle exited {first.code} after a person's push: {_last_line(first.output)}")
        else:
            second = case.run()
            if second.code not in scenario.recovery_codes:
                problems.append(f"the run after the kill exited {second.code}: {_last_line(second.output)}")
        if scenario.settle == "next" or (scenario.settle and action == "kill"):
            # "nothing" is not checked after a person's push: the run after it may rightly act on their commit
            # (a weight set by hand on a failing canary).
            settled = case.run()
            if settled.code != 0:
                problems.append(f"the run after convergence exited {settled.code}: {_last_line(settled.output)}")
        problems += judge(case, reference.snapshot, person=person, leftovers=leftovers)
        interrupted = first.fired and (first.killed or action == "push")
    return Outcome(scenario.name, point, action, interrupted, tuple(problems), time.monotonic() - started)


def _person_sha(case: Case) -> str | None:
    for commit in case.world.git.log(case.repo, max_count=200):
        if commit.subject == case.scenario.person.message.split("\n", 1)[0]:
            return commit.sha
    return None


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def stage_points(reference: Reference, delays: tuple[float, ...]) -> list[FaultPoint]:
    """Every stage the reference run went through (each occurrence), at every delay."""
    seen: Counter[str] = Counter()
    points = []
    for stage in reference.stages:
        seen[stage] += 1
        points += [FaultPoint("stage", stage, seen[stage], "", delay) for delay in delays]
    return points


def request_points(reference: Reference, *, kinds: tuple[Kind, ...] = ("git", "github")) -> list[FaultPoint]:
    """Every request the reference run made to the git server and the GitHub fake, before and after it acts."""
    points = []
    sources: tuple[tuple[Kind, tuple[str, ...]], ...] = (
        ("git", reference.git_requests),
        ("github", reference.github_requests),
    )
    phases: tuple[Phase, ...] = ("received", "handled")
    for kind, requests in sources:
        if kind not in kinds:
            continue
        seen: Counter[str] = Counter()
        for label in requests:
            seen[label] += 1
            points += [FaultPoint(kind, label, seen[label], phase) for phase in phases]
    return points


def clean(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
