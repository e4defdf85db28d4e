"""Whole-cycle canary scenarios: a real git server, a real Prometheus over backfilled data, a real registry.

One Prometheus per session serves every data set as its own namespace; every namespace's traffic follows
the same script in time (the route's weights are applied a minute after the bot commits them), so a test
drives `run_cycle` at fixed moments of that script through `ScenarioClock`. Git dates the bot's commits
with the same clock, so the history the bot reads agrees with the metrics it queries. In pull-request mode
(`make_world(..., github=github_fake)`) the forge is the GitHub fake, checked against GitHub's OpenAPI
description after each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitbot.adapters.prometheus import PrometheusMetrics
from gitbot.adapters.registry import OciRegistry
from gitbot.commands.compose import build_forge, build_registry, build_workspace
from gitbot.config import CanarySettings, Policy, load_policy
from gitbot.cycle import CycleResult, Deps, run_cycle
from gitbot.ports import Metrics
from tests.crd_schemas import validator_for
from tests.support.github_fake import GitHubFake, github_fake
from tests.support.gitserver import GitServer, ServerCommit, git_server
from tests.support.prometheus import BASE_TIME, HEALTHY, PrometheusServer, Scenario, SideProfile, start_prometheus
from tests.support.registry import RunningRegistry, push_tags, start_registry

__all__ = ["git_server", "github_fake"]

POLICY = "production"
ROUTES_FILE = "clusters/production/routes.yaml"
APPS_FILE = "clusters/production/podinfo.yaml"
GA_TAG = "0.1.1"
CANARY_TAG = "0.2.1"
CANARY_TAGS = ("0.2.0", CANARY_TAG)


def minute(n: float) -> datetime:
    """The moment `n` minutes into every data set."""
    return BASE_TIME + timedelta(minutes=n)


# When the bot's commits take effect in the data: 10 % from minute 2, 60 % from minute 15, 100 % from 28.
PROGRESS = ((0.0, 0.0), (120.0, 10.0), (900.0, 60.0), (1680.0, 100.0))
SLOW = HEALTHY.slower(2.5)
GA_ERRORS = SideProfile(error_ratio=0.005)
SCENARIOS = (
    Scenario(namespace="healthy", duration=timedelta(minutes=45), canary_share=PROGRESS),
    # Healthy through the first step; from minute 17 the canary answers 2.5x slower; rolled back to 0 at 25.
    Scenario(
        namespace="slow",
        duration=timedelta(minutes=45),
        canary_share=((0.0, 0.0), (120.0, 10.0), (900.0, 60.0), (1500.0, 0.0)),
        canary_changes=((1020.0, SLOW),),
    ),
    # Eight percent of the canary's answers are 503 from the start; rolled back to 0 at minute 9.
    Scenario(
        namespace="errors",
        duration=timedelta(minutes=20),
        canary_share=((0.0, 0.0), (120.0, 10.0), (540.0, 0.0)),
        canary=SideProfile(error_ratio=0.08),
    ),
    # Healthy through 60 %; at 100 % (from minute 28) the canary starts failing 8 % of requests at minute 30.
    Scenario(
        namespace="late-errors",
        duration=timedelta(minutes=40),
        canary_share=((0.0, 0.0), (120.0, 10.0), (900.0, 60.0), (1680.0, 100.0), (2220.0, 0.0)),
        canary_changes=((1800.0, SideProfile(error_ratio=0.08)),),
    ),
    # Healthy through 60 %; at 100 % (from minute 28) the canary answers twice as slowly from minute 29.
    Scenario(
        namespace="full-slow",
        duration=timedelta(minutes=40),
        canary_share=PROGRESS,
        canary_changes=((1740.0, HEALTHY.slower(2.0)),),
    ),
    # 10 % to the canary from minute 2 to the end: a canary that stays at its first step.
    Scenario(namespace="steady", duration=timedelta(minutes=45), canary_share=((0.0, 0.0), (120.0, 10.0))),
    # The route says 10 % but no request ever reaches the canary.
    Scenario(namespace="nocanary", duration=timedelta(minutes=30), canary_share=((0.0, 0.0),)),
    # Healthy; a person's revert of the 60 % step shows from minute 19, the step made again after a resume
    # at minute 31 shows from minute 32.
    Scenario(
        namespace="resumed",
        duration=timedelta(minutes=40),
        canary_share=((0.0, 0.0), (120.0, 10.0), (900.0, 60.0), (1140.0, 10.0), (1920.0, 60.0)),
    ),
    # GA and canary fail 0.5% of requests throughout; for the sequential checks at 100 %.
    Scenario(
        namespace="seq-full", duration=timedelta(minutes=45), canary_share=PROGRESS, stable=GA_ERRORS, canary=GA_ERRORS
    ),
    # The same until 100 % shows (minute 28); from then the canary fails 1% of requests, twice GA's rate before.
    Scenario(
        namespace="seq-full-errors",
        duration=timedelta(minutes=45),
        canary_share=PROGRESS,
        stable=GA_ERRORS,
        canary=GA_ERRORS,
        canary_changes=((1680.0, SideProfile(error_ratio=0.01)),),
    ),
)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), *SCENARIOS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    running = start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    running.stop()


class ScenarioClock:
    """`gitbot.ports.Clock` at a moment the test sets; git dates commits made meanwhile the same."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: datetime) -> None:
        self._monkeypatch = monkeypatch
        self._now = start
        self.set(start)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment
        stamp = f"@{int(moment.timestamp())} +0000"
        self._monkeypatch.setenv("GIT_COMMITTER_DATE", stamp)
        self._monkeypatch.setenv("GIT_AUTHOR_DATE", stamp)


def deployments(image: str, ga: str, canary: str) -> str:
    docs = []
    for name, tag in (("podinfo-ga", ga), ("podinfo-canary", canary)):
        docs.append(
            "apiVersion: apps/v1\n"
            "kind: Deployment\n"
            "metadata:\n"
            f"  name: {name}\n"
            "  namespace: test\n"
            "spec:\n"
            "  selector:\n"
            f"    matchLabels: {{app: {name}}}\n"
            "  template:\n"
            "    metadata:\n"
            f"      labels: {{app: {name}}}\n"
            "    spec:\n"
            "      containers:\n"
            "        - name: podinfod\n"
            f"          image: {image}:{tag}\n"
        )
    return "---\n".join(docs)


def routes(metadata: str = "", canary: int = 0) -> str:
    """The seed's DestinationRule and VirtualService; `metadata` adds lines under the latter's metadata."""
    meta = metadata
    return (
        "apiVersion: networking.istio.io/v1beta1\n"
        "kind: DestinationRule\n"
        "metadata:\n"
        "  name: podinfo\n"
        "  namespace: test\n"
        "spec:\n"
        "  host: podinfo\n"
        "  subsets:\n"
        "    - name: ga\n"
        "      labels: {app: podinfo-ga}\n"
        "    - name: canary\n"
        "      labels: {app: podinfo-canary}\n"
        "---\n"
        "apiVersion: networking.istio.io/v1beta1\n"
        "kind: VirtualService\n"
        "metadata:\n"
        "  name: podinfo\n"
        "  namespace: test\n"
        f"{meta}"
        "spec:\n"
        "  hosts: [podinfo.example.test]\n"
        "  gateways: [public]\n"
        "  http:\n"
        "    # the legacy path is split by hand; the canary must leave it alone\n"
        "    - name: legacy\n"
        "      match:\n"
        "        - uri: {prefix: /legacy}\n"
        "      route:\n"
        "        - destination: {host: podinfo-legacy, subset: v1}\n"
        "          weight: 70\n"
        "        - destination: {host: podinfo-legacy, subset: v2}\n"
        "          weight: 30\n"
        "    - name: api\n"
        "      match:\n"
        "        - uri: {prefix: /api}\n"
        "      route:\n"
        "        - destination: {host: podinfo, subset: ga}\n"
        f"          weight: {100 - canary}\n"
        "        - destination: {host: podinfo, subset: canary}\n"
        f"          weight: {canary}\n"
        "    - name: web\n"
        "      route:\n"
        "        - destination: {host: podinfo, subset: ga}\n"
        f"          weight: {100 - canary}  # GA\n"
        "        - destination: {host: podinfo, subset: canary}\n"
        f"          weight: {canary}\n"
    )


def http_route() -> str:
    """The same routing as `routes()` in the Gateway API's terms: backends by Service name."""
    return (
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        "metadata:\n"
        "  name: podinfo\n"
        "  namespace: test\n"
        "spec:\n"
        "  parentRefs:\n"
        "    - name: public\n"
        "  hostnames: [podinfo.example.test]\n"
        "  rules:\n"
        "    - matches:\n"
        "        - path: {type: PathPrefix, value: /legacy}\n"
        "      backendRefs:\n"
        "        - {name: podinfo-legacy-v1, port: 9898, weight: 70}\n"
        "        - {name: podinfo-legacy-v2, port: 9898, weight: 30}\n"
        "    - matches:\n"
        "        - path: {type: PathPrefix, value: /api}\n"
        "      backendRefs:\n"
        "        - name: podinfo-ga\n"
        "          port: 9898\n"
        "          weight: 100\n"
        "        - name: podinfo-canary\n"
        "          port: 9898\n"
        "          weight: 0\n"
        "    - backendRefs:\n"
        "        - {name: podinfo-ga, port: 9898, weight: 100}\n"
        "        - {name: podinfo-canary, port: 9898, weight: 0}\n"
    )


VIRTUAL_SERVICE = "route: VirtualService/test/podinfo\n      stable: {subset: ga}\n      canary: {subset: canary}"
GATEWAY_API = (
    "route: HTTPRoute/test/podinfo\n      stable: {backendRef: podinfo-ga}\n      canary: {backendRef: podinfo-canary}"
)


def policy_text(
    url: str,
    repository: str,
    registry_host: str,
    prometheus_url: str,
    namespace: str,
    route: str = VIRTUAL_SERVICE,
    on_complete: str = "hold",
    *,
    min_requests: int = 100,
    notify_after: int = 3,
    github_api: str | None = None,
    checks: tuple[str, ...] = ("{name: success-rate, min: 99, maxDrop: 0.5}", "{name: latency-p99, maxRatio: 1.5}"),
) -> str:
    delivery = (
        "  delivery:\n"
        "    mode: pull-request\n"
        f'    github: {{repository: acme/cluster-config, tokenEnv: GITHUB_TOKEN, apiUrl: "{github_api}", '
        "labels: [gitbot, canary]}\n"
        if github_api
        else ""
    )
    return f"""\
apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata:
  name: {POLICY}
spec:
  git:
    url: {url}
    branch: main
    paths: [clusters/production]
    tokenEnv: SCENARIO_GIT_TOKEN
    username: gitbot
    author: {{name: gitbot, email: gitbot@example.test}}
{delivery}  registries:
    - {{host: "{registry_host}", insecure: true}}
  images:
    - name: podinfo-ga
      repository: {repository}
      filter: "0.1.*"
      targets:
        - {{resource: Deployment/test/podinfo-ga, container: podinfod}}
    - name: podinfo-canary
      repository: {repository}
      filter: "0.2.*"
      targets:
        - {{resource: Deployment/test/podinfo-canary, container: podinfod}}
  canaries:
    - name: podinfo
      {route}
      image: podinfo-canary
      steps: [10, 60, 100]
      interval: 10m
      analysis:
        prometheus: {{url: "{prometheus_url}"}}
        namespace: {namespace}
        window: 5m
        minRequests: {min_requests}
        notifyAfterInconclusive: {notify_after}
        stableWorkload: podinfo-ga
        canaryWorkload: podinfo-canary
        checks:
{"".join(f"          - {check}{chr(10)}" for check in checks)}      onFailure: rollback
      onComplete: {on_complete}
"""


@dataclass
class World:
    """One scenario's repository, policy, adapters and clock."""

    server: GitServer
    repo: str
    policy: Policy
    deps: Deps
    clock: ScenarioClock
    registry: RunningRegistry
    image_repo: str
    trace_dir: Path
    build: Callable[[str], Deps]
    restarts: int = 0
    github: GitHubFake | None = None
    policy_path: Path | None = None

    def restart(self) -> None:
        """Carry on as a freshly started bot: nothing remembered but what is in git."""
        self.restarts += 1
        self.deps = self.build(f"cache-{self.restarts}")

    def cycle(self, at: float) -> CycleResult:
        """One delivered cycle at minute `at` of the data sets."""
        self.clock.set(minute(at))
        return run_cycle(self.policy, self.deps, deliver=True)

    def plan(self, at: float) -> CycleResult:
        self.clock.set(minute(at))
        return run_cycle(self.policy, self.deps, deliver=False)

    @contextmanager
    def git_trace(self) -> Iterator[Path]:
        """Record every git command the bot runs meanwhile (git's own GIT_TRACE) into the yielded file."""
        path = self.trace_dir / f"trace-{len(list(self.trace_dir.iterdir()))}.log"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GIT_TRACE", str(path))
            yield path

    def log(self) -> list[ServerCommit]:
        return self.server.log(self.repo)

    def routes_text(self, ref: str = "main") -> str:
        return self.server.read_file(self.repo, ROUTES_FILE, ref)

    def revert_as_person(self, step: ServerCommit, to: str, date: datetime | None = None) -> str:
        """A person's revert of the bot's `step`: the routes file back as it was at `to`, as `git revert` says."""
        return self.server.commit_as_other(
            self.repo,
            {ROUTES_FILE: self.routes_text(to)},
            f'Revert "{step.subject}"\n\nThis reverts commit {step.sha}.\n',
            date=date,
        )

    def validate_every_version(self) -> int:
        """Validate the VirtualService of every commit on the branch against the CRD; return how many."""
        commits = self.log()
        for commit in commits:
            weights(self.routes_text(commit.sha))
        return len(commits)

    def push_tags(self, *tags: str) -> None:
        push_tags(self.registry.url, self.image_repo, tags)
        assert isinstance(self.deps.registry, OciRegistry)
        self.deps.registry.clear_cache()


def weights(text: str) -> dict[str, list[tuple[str, int]]]:
    """Route -> (destination, weight) pairs of the VirtualService or HTTPRoute in `text`, validated
    against its CRD. HTTPRoute rules have no names: they are keyed as the VirtualService's routes are."""
    docs = list(YAML(typ="safe", pure=True).load_all(text))
    service = next(d for d in docs if d["kind"] in ("VirtualService", "HTTPRoute"))
    validator = validator_for(service)
    assert validator is not None
    validator.validate(service)
    if service["kind"] == "HTTPRoute":
        names = {"podinfo-ga": "ga", "podinfo-canary": "canary", "podinfo-legacy-v1": "v1", "podinfo-legacy-v2": "v2"}
        return {
            key: [(names[ref["name"]], ref["weight"]) for ref in rule["backendRefs"]]
            for key, rule in zip(("legacy", "api", "web"), service["spec"]["rules"], strict=True)
        }
    return {
        route["name"]: [(r["destination"]["subset"], r["weight"]) for r in route["route"]]
        for route in service["spec"]["http"]
    }


WorldFactory = Callable[..., World]


@pytest.fixture
def make_world(
    git_server: GitServer,
    registry: RunningRegistry,
    prometheus: PrometheusServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[WorldFactory]:
    clients: list[PrometheusMetrics] = []

    def make(
        namespace: str,
        *,
        prometheus_url: str | None = None,
        route_metadata: str = "",
        canary_weight: int = 0,
        gateway_api: bool = False,
        on_complete: str = "hold",
        min_requests: int = 100,
        notify_after: int = 3,
        github: GitHubFake | None = None,
        checks: tuple[str, ...] | None = None,
    ) -> World:
        name = git_server.unique_name(f"canary-{namespace}")
        image_repo = f"scenarios/{name}/podinfo"
        push_tags(registry.url, image_repo, (GA_TAG, *CANARY_TAGS))
        image = f"{registry.host}/{image_repo}"
        seed = {
            APPS_FILE: deployments(image, GA_TAG, CANARY_TAG),
            ROUTES_FILE: http_route() if gateway_api else routes(route_metadata, canary_weight),
        }
        url = git_server.create_repo(name, seed)
        path = tmp_path / f"{POLICY}.yaml"
        path.write_text(
            policy_text(
                url,
                image,
                registry.host,
                prometheus_url or prometheus.url,
                namespace,
                GATEWAY_API if gateway_api else VIRTUAL_SERVICE,
                on_complete,
                min_requests=min_requests,
                notify_after=notify_after,
                github_api=github.base_url if github else None,
                **({"checks": checks} if checks is not None else {}),
            ),
            encoding="utf-8",
        )
        policy = load_policy(path)
        clock = ScenarioClock(monkeypatch, minute(0))
        if github is not None:
            # As GitHub does, pull requests report the head their branch has on the git server.
            github.follow_refs(lambda branch: git_server.head(name, branch))

        def metrics(canary: CanarySettings) -> Metrics:
            client = PrometheusMetrics(canary.analysis.prometheus.url, timeout=5)
            clients.append(client)
            return client

        def build(cache: str) -> Deps:
            # A new process: its own clone cache, registry client and (empty) inconclusive streaks.
            env = {"SCENARIO_GIT_TOKEN": git_server.token, "GITBOT_CACHE_DIR": str(tmp_path / cache)}
            if github is not None:
                env["GITHUB_TOKEN"] = github.token
            return Deps(
                workspace=build_workspace(policy, env),
                registry=build_registry(policy, env),
                clock=clock,
                forge=build_forge(policy, env, throttle=False),
                metrics=metrics,
            )

        traces = tmp_path / "traces"
        traces.mkdir(exist_ok=True)
        return World(
            git_server,
            name,
            policy,
            build("cache"),
            clock,
            registry,
            image_repo,
            traces,
            build,
            github=github,
            policy_path=path,
        )

    yield make
    for client in clients:
        client.close()
