"""Whole reconcile cycles against real components: the loopback git server, a real `docker-registry` and the
GitHub REST fake (checked against GitHub's OpenAPI description after every test).

A session registry holds the seed scenario's podinfo tags; every test gets its own git repository seeded
with the scenario manifests, its own policy file and its own clone cache. Tests that need newer tags push
them to a repository name of their own so that the session registry stays as the other tests expect.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitbot.adapters.registry import OciRegistry
from gitbot.commands.compose import build_deps
from gitbot.config import Policy, load_policy
from gitbot.cycle import Deps
from tests.support.github_fake import GitHubFake, github_fake
from tests.support.gitserver import OTHER_EMAIL, OTHER_NAME, GitServer, RepoFactory, git_server, new_git_repo
from tests.support.registry import RunningRegistry, push_tags, start_registry

__all__ = ["git_server", "github_fake", "new_git_repo"]


PODINFO = "stefanprodan/podinfo"
SEED_TAGS = ("0.1.0", "0.1.1", "0.1.2", "0.2.0", "0.2.1")
POLICY = "production"
PATH = "clusters/production"
WORKLOADS = f"{PATH}/podinfo.yaml"
ROUTING = f"{PATH}/routing.yaml"

_WORKLOADS = """\
# The seed scenario: a GA and a canary Deployment of podinfo behind one VirtualService.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-ga
  namespace: test
spec:
  replicas: 2
  selector:
    matchLabels: {{app: podinfo, track: ga}}
  template:
    metadata:
      labels: {{app: podinfo, version: ga, track: ga}}
    spec:
      containers:
        - name: podinfod
          image: {registry}/{repo}:{ga}   # GA
          ports:
            - containerPort: 9898
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-canary
  namespace: test
spec:
  replicas: 1
  selector:
    matchLabels: {{app: podinfo, track: canary}}
  template:
    metadata:
      labels: {{app: podinfo, version: canary, track: canary}}
    spec:
      containers:
        - name: podinfod
          image: "{registry}/{repo}:{canary}"
          ports:
            - containerPort: 9898
"""

ROUTING_TEXT = """\
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: test
spec:
  selector: {app: podinfo}
  ports:
    - {name: http, port: 9898}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: podinfo
  namespace: test
spec:
  host: podinfo
  subsets:
    - name: ga
      labels: {track: ga}
    - name: canary
      labels: {track: canary}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
spec:
  hosts: [podinfo.example.com]
  http:
    - route:
        - destination: {host: podinfo, subset: ga}
          weight: 100   # GA
        - destination: {host: podinfo, subset: canary}
          weight: 0
"""


def workloads_text(registry: str, repo: str = PODINFO, *, ga: str = "0.1.0", canary: str = "0.2.0") -> str:
    return _WORKLOADS.format(registry=registry, repo=repo, ga=ga, canary=canary)


def image_yaml(repo_ref: str, name: str, flt: str, resource: str, container: str | None) -> str:
    target = f"{{resource: {resource}" + (f", container: {container}" if container else "") + "}"
    return (
        f'    - name: {name}\n      repository: {repo_ref}\n      filter: "{flt}"\n      targets:\n        - {target}\n'
    )


def policy_text(
    *,
    url: str,
    registry: str,
    repo: str = PODINFO,
    mode: str = "commit",
    group: str = "per-image",
    api_url: str = "",
    username: str = "gitbot",
    images: str | None = None,
) -> str:
    ref = f"{registry}/{repo}"
    if images is None:
        images = image_yaml(ref, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod") + image_yaml(
            ref, "podinfo-canary", "0.2.*", "Deployment/test/podinfo-canary", None
        )
    github = (
        f"    github: {{repository: acme/cluster-config, tokenEnv: GITHUB_TOKEN, apiUrl: {json.dumps(api_url)}, "
        "labels: [gitbot, release]}\n"
        if mode == "pull-request"
        else ""
    )
    return (
        "apiVersion: gitbot.dev/v1alpha1\n"
        "kind: Policy\n"
        f"metadata: {{name: {POLICY}}}\n"
        "spec:\n"
        "  git:\n"
        f"    url: {url}\n"
        "    branch: main\n"
        f"    paths: [{PATH}]\n"
        "    tokenEnv: GITBOT_GIT_TOKEN\n"
        f"    username: {username}\n"
        "    author: {name: gitbot, email: gitbot@acme.example}\n"
        "  delivery:\n"
        f"    mode: {mode}\n"
        f"    group: {group}\n"
        f"{github}"
        f"  registries: [{{host: {json.dumps(registry)}, insecure: true}}]\n"
        "  images:\n"
        f"{images}"
    )


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One anonymous `docker-registry` with the seed scenario's podinfo tags."""
    running = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        push_tags(running.url, PODINFO, SEED_TAGS)
        yield running
    finally:
        running.stop()


@dataclass
class World:
    """One test's repository, policy file and environment, and ways to run gitbot against them."""

    git: GitServer
    registry: RunningRegistry
    repo: str
    url: str
    tmp: Path
    env: dict[str, str]
    github: GitHubFake | None = None
    policy_path: Path = field(init=False)
    image_repo: str = PODINFO

    def __post_init__(self) -> None:
        self.policy_path = self.tmp / "policies" / f"{POLICY}.yaml"

    @property
    def image(self) -> str:
        return f"{self.registry.host}/{self.image_repo}"

    def write_policy(self, **options: str) -> Path:
        self.policy_path.parent.mkdir(parents=True, exist_ok=True)
        if self.github is not None:
            options.setdefault("mode", "pull-request")
            options.setdefault("api_url", self.github.base_url)
        text = policy_text(url=self.url, registry=self.registry.host, repo=self.image_repo, **options)
        self.policy_path.write_text(text, encoding="utf-8")
        return self.policy_path

    def policy(self) -> Policy:
        if not self.policy_path.exists():
            self.write_policy()
        return load_policy(self.policy_path)

    def deps(self, policy: Policy | None = None) -> Deps:
        """The real adapters as the CLI builds them (GitHub throttling off: the fake is in-process)."""
        return build_deps(policy or self.policy(), need_forge=True, env=self.env, throttle=False)

    def push_tags(self, *tags: str) -> None:
        push_tags(self.registry.url, self.image_repo, tags)

    def workloads(self, ref: str = "main") -> str:
        return self.git.read_file(self.repo, WORKLOADS, ref)

    def expected_workloads(self, *, ga: str = "0.1.0", canary: str = "0.2.0") -> str:
        return workloads_text(self.registry.host, self.image_repo, ga=ga, canary=canary)


WorldFactory = Callable[..., World]


@pytest.fixture
def make_world(
    git_server: GitServer, registry: RunningRegistry, new_git_repo: RepoFactory, tmp_path: Path
) -> WorldFactory:
    """`make_world(image_repo=..., github=..., tags=[...], extra_files={...})`: a fresh repository seeded with
    the scenario (and `extra_files`, path -> text).

    A non-default `image_repo` gets `tags` pushed (the seed tags when not given), so that a test can push
    newer tags without disturbing others.
    """

    def make(
        *,
        image_repo: str = PODINFO,
        github: GitHubFake | None = None,
        tags: tuple[str, ...] = SEED_TAGS,
        extra_files: Mapping[str, str] | None = None,
    ) -> World:
        if image_repo != PODINFO:
            push_tags(registry.url, image_repo, tags)
        files = {
            WORKLOADS: workloads_text(registry.host, image_repo),
            ROUTING: ROUTING_TEXT,
            "README.md": "cluster configuration\n",
            **(extra_files or {}),
        }
        name, url = new_git_repo(files)
        docker = tmp_path / "docker"
        docker.mkdir(exist_ok=True)
        (docker / "config.json").write_text('{"auths": {}}', encoding="utf-8")
        env = {
            "GITBOT_GIT_TOKEN": git_server.token,
            "GITBOT_CACHE_DIR": str(tmp_path / "cache"),
            "DOCKER_CONFIG": str(docker),
            "HOME": str(tmp_path),
        }
        if github is not None:
            env["GITHUB_TOKEN"] = github.token
            # As GitHub does, pull requests report the head their branch has on the git server.
            github.follow_refs(lambda branch: git_server.head(name, branch))
        return World(git_server, registry, name, url, tmp_path, env, github, image_repo=image_repo)

    return make


@pytest.fixture
def world(make_world: WorldFactory) -> World:
    """A commit-mode world on the session's podinfo tags."""
    return make_world()


@pytest.fixture
def pr_world(make_world: WorldFactory, github_fake: GitHubFake, request: pytest.FixtureRequest) -> World:
    """A pull-request-mode world with its own image repository (tests push newer tags to it)."""
    slug = request.node.name.replace("_", "-").lower()[:40].strip("-")
    return make_world(image_repo=f"pr/{slug}", github=github_fake)


def close_registries(deps: Deps) -> None:
    if isinstance(deps.registry, OciRegistry):
        deps.registry.close()


def person_git(world: World, *steps: tuple[str, ...], branch: str = "main") -> str:
    """A person clones the repository, runs git `steps` in it, pushes `branch`; returns the new head."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": OTHER_NAME,
        "GIT_AUTHOR_EMAIL": OTHER_EMAIL,
        "GIT_COMMITTER_NAME": OTHER_NAME,
        "GIT_COMMITTER_EMAIL": OTHER_EMAIL,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    with tempfile.TemporaryDirectory(prefix="person-clone-") as tmp:

        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", tmp, *args], env=env, check=True, capture_output=True, text=True).stdout

        subprocess.run(
            ["git", "clone", "--quiet", "--branch", branch, str(world.git.repo_path(world.repo)), tmp],
            env=env,
            check=True,
            capture_output=True,
        )
        for step in steps:
            git(*step)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        return git("rev-parse", "HEAD").strip()


def person_reverts(world: World, sha: str, branch: str = "main") -> str:
    """A person runs `git revert <sha>` in their own clone and pushes; returns the revert's sha."""
    return person_git(world, ("revert", "--no-edit", sha), branch=branch)
