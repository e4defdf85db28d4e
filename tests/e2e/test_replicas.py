"""Three `gitbot run` replicas on the same policies, the same git server, registry and GitHub fake.

Git and the forge are the bot's only state, so replicas whose cycles overlap must still deliver each change
exactly once: in commit mode every tag step lands on the branch once, in order, and never moves a tag back;
a person's commits pushed meanwhile all survive. In pull-request mode each (policy, image) has one pull
request, opened once and updated in place, whose branch ends at the newest tag; the environment branch is
untouched. Each daemon gets its own cache directory, as replicas on separate pods have.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import AuthRegistry, manifest
from tests.support.cli import coverage_env
from tests.support.github_fake import GitHubFake
from tests.support.gitserver import GitServer
from tests.support.registry import free_port, push_tags

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 3
COMMIT_POLICIES = ("alpha", "beta", "gamma")
PULL_POLICIES = ("delta", "epsilon")
STEPS = ("1.0.1", "1.0.2", "1.0.3")
SUBJECT = re.compile(r"^gitbot\((?P<policy>[^)]+)\): app (?P<old>\S+) -> (?P<new>\S+)$")


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    stderr: Path

    def events(self) -> list[dict[str, object]]:
        out = []
        for line in self.stderr.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


@dataclass
class Setup:
    repo: str
    image_path: str
    repository: str
    policies: Path
    env: dict[str, str]


def policy_text(name: str, *, git_url: str, repository: str, registry_host: str, delivery: str) -> str:
    return (
        "apiVersion: gitbot.dev/v1alpha1\n"
        "kind: Policy\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  git: {{url: {json.dumps(git_url)}, branch: main, paths: [clusters/{name}], tokenEnv: GIT_TOKEN,\n"
        "        username: gitbot, author: {name: gitbot, email: gitbot@example.test}, maxPushAttempts: 5}\n"
        "  schedule: {interval: 1s}\n"
        "  images:\n"
        f"    - {{name: app, repository: {json.dumps(repository)}, filter: '1.0.*',\n"
        f"       targets: [{{resource: Deployment/{name}/app, container: app}}]}}\n"
        f"  registries: [{{host: {json.dumps(registry_host)}, usernameEnv: REG_USER, passwordEnv: REG_PASSWORD}}]\n"
        + delivery
    )


def make_setup(
    tmp_path: Path, git_server: GitServer, auth_registry: AuthRegistry, names: tuple[str, ...], delivery: str
) -> Setup:
    registry = auth_registry.running
    image_path = f"acme/replicas-{uuid.uuid4().hex[:8]}"
    repository = f"{registry.host}/{image_path}"
    push_tags(registry.url, image_path, ["1.0.0", "1.0.1"], auth=(auth_registry.user, auth_registry.password))
    repo = git_server.unique_name("replicas")
    files = {f"clusters/{name}/app.yaml": manifest(f"{repository}:1.0.0", name) for name in names}
    git_server.create_repo(repo, {**files, "notes/log.txt": "start\n"})
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in names:
        text = policy_text(
            name,
            git_url=git_server.url_for(repo),
            repository=repository,
            registry_host=registry.host,
            delivery=delivery,
        )
        (policies / f"{name}.yaml").write_text(text)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **coverage_env(),
        "HOME": str(tmp_path / "home"),
        "GITBOT_GITHUB_THROTTLE": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONPATH": str(ROOT),
        "GIT_TOKEN": git_server.token,
        "REG_USER": auth_registry.user,
        "REG_PASSWORD": auth_registry.password,
    }
    return Setup(repo, image_path, repository, policies, env)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[[Setup], list[Replica]]]:
    started: list[Replica] = []

    def start(setup: Setup) -> list[Replica]:
        for index in range(REPLICAS):
            stderr = tmp_path / f"replica-{index}.log"
            env = {**setup.env, "GITBOT_CACHE_DIR": str(tmp_path / f"cache-{index}"), "HOSTNAME": f"gitbot-{index}"}
            command = [sys.executable, "-m", "gitbot", "run", "--policies", str(setup.policies)]
            command += ["--port", str(free_port()), "--host", "127.0.0.1", "--log-format", "json"]
            with stderr.open("wb") as err:
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=tmp_path)
            started.append(Replica(process, stderr))
        return started

    yield start
    for replica in started:
        if replica.process.poll() is None:
            replica.process.kill()
            replica.process.wait(timeout=5)


def wait_for(what: str, check: Callable[[], bool], replicas: list[Replica], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for replica in replicas:
            if replica.process.poll() is not None:
                pytest.fail(f"a replica exited while waiting for {what}:\n{replica.stderr.read_text()[-4000:]}")
        if check():
            return
        time.sleep(0.1)
    tails = "\n".join(r.stderr.read_text()[-3000:] for r in replicas)
    pytest.fail(f"timed out waiting for {what}:\n{tails}")


def stop_all(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.process.send_signal(signal.SIGTERM)
    for replica in replicas:
        assert replica.process.wait(timeout=30) == 0, replica.stderr.read_text()[-3000:]


def person_commits(git_server: GitServer, repo: str, line: str) -> str:
    """A person's push to main while the bots push too: retried like `git push` after a fetch."""
    for _ in range(50):
        text = git_server.read_file(repo, "notes/log.txt")
        try:
            return git_server.commit_as_other(repo, {"notes/log.txt": text + line + "\n"}, f"notes: {line}")
        except RuntimeError:
            time.sleep(0.05)  # the branch moved under us; read it again
    raise AssertionError("the person could not push for the bots")


def version(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in tag.split("."))


def failures(replicas: list[Replica]) -> list[str]:
    return [
        f"{e.get('policy')}: {e.get('error_type')}: {e.get('error')}"
        for replica in replicas
        for e in replica.events()
        if e.get("event") == "cycle" and e.get("outcome") == "failed"
    ]


def unexpected_failures(replicas: list[Replica]) -> list[str]:
    """Failed cycles other than a lost race, which the next tick (or another replica) makes good.

    A push that loses to another replica's push is rejected (non-fast-forward) until the attempts run out;
    one that loses the server's ref lock at the same moment fails with "failed to update ref".
    """
    return [f for f in failures(replicas) if "PushRejectedError" not in f and "failed to update ref" not in f]


def test_three_replicas_in_commit_mode_deliver_each_step_once_and_lose_nothing(
    tmp_path: Path,
    git_server: GitServer,
    auth_registry: AuthRegistry,
    replicas: Callable[[Setup], list[Replica]],
) -> None:
    setup = make_setup(tmp_path, git_server, auth_registry, COMMIT_POLICIES, "")
    auth = (auth_registry.user, auth_registry.password)
    running = replicas(setup)

    def all_at(tag: str) -> Callable[[], bool]:
        def check() -> bool:
            return all(
                f":{tag}\n" in git_server.read_file(setup.repo, f"clusters/{name}/app.yaml") for name in COMMIT_POLICIES
            )

        return check

    people = []
    wait_for("every policy at 1.0.1", all_at("1.0.1"), running)
    people.append(person_commits(git_server, setup.repo, "first"))
    push_tags(auth_registry.running.url, setup.image_path, ["1.0.2"], auth=auth)
    wait_for("every policy at 1.0.2", all_at("1.0.2"), running)
    people.append(person_commits(git_server, setup.repo, "second"))
    push_tags(auth_registry.running.url, setup.image_path, ["1.0.3"], auth=auth)
    wait_for("every policy at 1.0.3", all_at("1.0.3"), running)
    people.append(person_commits(git_server, setup.repo, "third"))
    # Idle cycles of every replica on the final state: none of them may move anything again.
    time.sleep(3)
    stop_all(running)

    history = git_server.log(setup.repo, max_count=500)
    shas = {c.sha for c in history}
    assert all(sha in shas for sha in people), "a person's commit was lost"
    assert git_server.read_file(setup.repo, "notes/log.txt") == "start\nfirst\nsecond\nthird\n"
    bot = [c for c in reversed(history) if c.author_email == "gitbot@example.test"]
    steps: dict[str, list[tuple[str, str]]] = {name: [] for name in COMMIT_POLICIES}
    for commit in bot:
        match = SUBJECT.match(commit.subject)
        assert match, commit.subject
        steps[match["policy"]].append((match["old"], match["new"]))
    for name, moves in steps.items():
        assert len(moves) == len(set(moves)), f"{name}: a step was committed twice: {moves}"
        assert moves[0][0] == "1.0.0" and moves[-1][1] == "1.0.3", f"{name}: {moves}"
        assert all(version(new) > version(old) for old, new in moves), f"{name}: a tag moved back: {moves}"
        assert all(a[1] == b[0] for a, b in itertools.pairwise(moves)), f"{name}: {moves}"
        assert ":1.0.3\n" in git_server.read_file(setup.repo, f"clusters/{name}/app.yaml")
    # Each delivered change was reported by exactly the replica that pushed it.
    reported = Counter(
        str(e["policy"])
        for replica in running
        for e in replica.events()
        if e.get("event") == "change" and e.get("outcome") == "committed"
    )
    assert reported == Counter({name: len(moves) for name, moves in steps.items()}), failures(running)
    assert unexpected_failures(running) == []


def test_three_replicas_in_pull_request_mode_keep_one_pull_request_per_change(
    tmp_path: Path,
    git_server: GitServer,
    auth_registry: AuthRegistry,
    github_fake: GitHubFake,
    replicas: Callable[[Setup], list[Replica]],
) -> None:
    delivery = (
        "  delivery:\n"
        "    mode: pull-request\n"
        f"    github: {{repository: {github_fake.full_name}, tokenEnv: GH_TOKEN,\n"
        f"             apiUrl: {json.dumps(github_fake.base_url)}, labels: [gitbot]}}\n"
    )
    setup = make_setup(tmp_path, git_server, auth_registry, PULL_POLICIES, delivery)
    setup.env["GH_TOKEN"] = github_fake.token
    # As GitHub does, pull requests report the head their branch has on the git server.
    github_fake.follow_refs(lambda branch: git_server.head(setup.repo, branch))
    auth = (auth_registry.user, auth_registry.password)
    running = replicas(setup)

    def branch_at(tag: str) -> Callable[[], bool]:
        def check() -> bool:
            for name in PULL_POLICIES:
                branch = f"gitbot/{name}/app"
                if git_server.head(setup.repo, branch) is None:
                    return False
                if f":{tag}\n" not in git_server.read_file(setup.repo, f"clusters/{name}/app.yaml", branch):
                    return False
                if not any(p.head == branch and p.state == "open" and tag in p.title for p in github_fake.list_pulls()):
                    return False
            return True

        return check

    wait_for("a pull request per policy at 1.0.1", branch_at("1.0.1"), running)
    push_tags(auth_registry.running.url, setup.image_path, ["1.0.2"], auth=auth)
    wait_for("the pull requests at 1.0.2", branch_at("1.0.2"), running)
    push_tags(auth_registry.running.url, setup.image_path, ["1.0.3"], auth=auth)
    wait_for("the pull requests at 1.0.3", branch_at("1.0.3"), running)
    time.sleep(3)
    stop_all(running)

    pulls = github_fake.list_pulls()
    assert sorted((p.head, p.state) for p in pulls) == [(f"gitbot/{name}/app", "open") for name in PULL_POLICIES]
    assert all(p.labels == ["gitbot"] and "1.0.3" in p.title for p in pulls)
    created = [e for e in github_fake.requests("POST") if e.path.endswith("/pulls") and e.status == 201]
    assert len(created) == len(PULL_POLICIES), "a pull request was opened twice"
    for name in PULL_POLICIES:
        assert ":1.0.3\n" in git_server.read_file(setup.repo, f"clusters/{name}/app.yaml", f"gitbot/{name}/app")
        # The environment branch waits for a review.
        assert ":1.0.0\n" in git_server.read_file(setup.repo, f"clusters/{name}/app.yaml")
    opened = Counter(
        str(e["policy"])
        for replica in running
        for e in replica.events()
        if e.get("event") == "change" and e.get("outcome") == "opened"
    )
    assert opened == Counter(dict.fromkeys(PULL_POLICIES, 1)), failures(running)
    assert unexpected_failures(running) == []
