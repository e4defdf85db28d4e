"""`gitbot run` as a subprocess against a real git server, a real registry, the GitHub fake and Slack.

Three policies run side by side on a one-second interval: `staging` commits to its branch, `production`
opens a pull request on the GitHub fake, and `broken` names a registry nobody listens on, so it keeps
failing with backoff while the others work. A newer tag is pushed mid-run; the test then reads /metrics,
/healthz and /readyz, stops the daemon with SIGTERM and checks git, the fake, Slack and the logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.notify.conftest import Receiver, validate_slack
from tests.e2e.conftest import AuthRegistry, manifest, policy
from tests.support.cli import coverage_env
from tests.support.github_fake import GitHubFake
from tests.support.gitserver import GitServer
from tests.support.registry import free_port, push_tags

ROOT = Path(__file__).resolve().parents[2]
SLACK_SECRET = "hook-9b27f3c4-secret"
IMAGE_PATH = "acme/app"


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def wait_for(what: str, check: Callable[[], bool], daemon: Daemon, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail(f"gitbot run exited ({daemon.process.returncode}) while waiting for {what}:\n{daemon.output()}")
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; daemon output:\n{daemon.output()[-4000:]}")


def unexpected_failures(daemon: Daemon) -> list[str]:
    """Failed cycles of the policies that should work, for the message of a failing assertion."""
    return [
        line
        for line in daemon.stderr.read_text().splitlines()
        if '"outcome":"failed"' in line and '"policy":"broken"' not in line
    ]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def daemon_env(
    tmp_path: Path,
    git_server: GitServer,
    auth_registry: AuthRegistry,
    github_fake: GitHubFake,
    slack: Receiver,
) -> Iterator[tuple[Path, dict[str, str], dict[str, str]]]:
    registry = auth_registry.running
    repository = f"{registry.host}/{IMAGE_PATH}"
    push_tags(registry.url, IMAGE_PATH, ["1.0.0", "1.0.1", "2.0.0"], auth=(auth_registry.user, auth_registry.password))
    staging = git_server.unique_name("staging")
    git_server.create_repo(staging, {"clusters/staging/app.yaml": manifest(f"{repository}:1.0.0", "staging")})
    production = git_server.unique_name("production")
    git_server.create_repo(production, {"clusters/production/app.yaml": manifest(f"{repository}:1.0.0", "production")})
    # As GitHub does, pull requests report the head their branch has on the git server.
    github_fake.follow_refs(lambda branch: git_server.head(production, branch))
    broken = git_server.unique_name("broken")
    git_server.create_repo(broken, {"clusters/broken/app.yaml": manifest("127.0.0.1:9/acme/app:1.0.0", "broken")})
    dead_host = f"127.0.0.1:{free_port()}"
    pull_requests = (
        "  delivery:\n"
        "    mode: pull-request\n"
        f"    github: {{repository: {github_fake.full_name}, tokenEnv: GH_TOKEN,\n"
        f"             apiUrl: {json.dumps(github_fake.base_url)}}}\n"
    )
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "staging.yaml").write_text(
        policy(
            "staging",
            git_url=git_server.url_for(staging),
            namespace="staging",
            repository=repository,
            registry_host=registry.host,
            extra="",
        )
    )
    (policies / "production.yaml").write_text(
        policy(
            "production",
            git_url=git_server.url_for(production),
            namespace="production",
            repository=repository,
            registry_host=registry.host,
            extra=pull_requests,
        )
    )
    (policies / "broken.yaml").write_text(
        policy(
            "broken",
            git_url=git_server.url_for(broken),
            namespace="broken",
            repository=f"{dead_host}/{IMAGE_PATH}",
            registry_host=dead_host,
            extra="",
        )
    )
    secrets = {
        "GIT_TOKEN": git_server.token,
        "GH_TOKEN": github_fake.token,
        "REG_PASSWORD": auth_registry.password,
        "SLACK_URL": f"{slack.base}/services/T0/B0/{SLACK_SECRET}",
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **coverage_env(),
        "HOME": str(tmp_path / "home"),
        "GITBOT_CACHE_DIR": str(tmp_path / "cache"),
        "GITBOT_GITHUB_THROTTLE": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONPATH": str(ROOT),
        "REG_USER": auth_registry.user,
        **secrets,
    }
    names = {"staging": staging, "production": production}
    yield policies, env, names


def test_the_daemon_runs_policies_side_by_side_and_stops_cleanly(
    tmp_path: Path,
    daemon_env: tuple[Path, dict[str, str], dict[str, str]],
    git_server: GitServer,
    auth_registry: AuthRegistry,
    github_fake: GitHubFake,
    slack: Receiver,
) -> None:
    policies, env, repos = daemon_env
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    command = [sys.executable, "-m", "gitbot", "run", "--policies", str(policies), "--port", str(port)]
    command += ["--host", "127.0.0.1", "--log-level", "debug"]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=tmp_path)
    daemon = Daemon(process, port, stdout, stderr)
    try:
        _exercise(daemon, git_server, auth_registry, github_fake, slack, repos)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    output = daemon.output()
    for name in ("GIT_TOKEN", "GH_TOKEN", "REG_PASSWORD", "SLACK_URL"):
        assert env[name] not in output, f"the value of {name} appears in the daemon's output"
    assert SLACK_SECRET not in output

    events = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    cycles = [e for e in events if e["event"] == "cycle"]
    assert {e["policy"] for e in cycles} == {"staging", "production", "broken"}
    assert any(
        e["policy"] == "broken" and e["outcome"] == "failed" and e["error_type"] == "RegistryError" for e in cycles
    )
    changes = [(e["policy"], e["outcome"]) for e in events if e["event"] == "change"]
    assert changes.count(("staging", "committed")) == 2
    assert ("production", "opened") in changes and ("production", "updated") in changes
    assert events[-1]["event"] == "service stopped"


def _exercise(
    daemon: Daemon,
    git_server: GitServer,
    auth_registry: AuthRegistry,
    github_fake: GitHubFake,
    slack: Receiver,
    repos: dict[str, str],
) -> None:
    staging, production = repos["staging"], repos["production"]

    def ready() -> bool:
        try:
            return daemon.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def staging_at(tag: str) -> Callable[[], bool]:
        return lambda: f"/acme/app:{tag}\n" in git_server.read_file(staging, "clusters/staging/app.yaml")

    def pull_at(tag: str) -> Callable[[], bool]:
        return lambda: any(p.state == "open" and tag in p.title for p in github_fake.list_pulls())

    wait_for("/readyz", ready, daemon, timeout=10)
    wait_for("staging at 1.0.1", staging_at("1.0.1"), daemon)
    wait_for("a pull request for 1.0.1", pull_at("1.0.1"), daemon)

    push_tags(auth_registry.running.url, IMAGE_PATH, ["1.0.2"], auth=(auth_registry.user, auth_registry.password))
    wait_for("staging at 1.0.2", staging_at("1.0.2"), daemon)
    wait_for("the pull request updated to 1.0.2", pull_at("1.0.2"), daemon)

    def failure_notified() -> bool:
        return any("broken" in str(p.body) and "cycle-failed" in str(p.body) for p in slack.posts)

    wait_for("the failure notification", failure_notified, daemon)
    wait_for("the updated pull request's notification", lambda: "Pull request updated" in str(slack.posts), daemon)
    _daemon_notifications(slack)

    assert daemon.get("/healthz").status_code == 200
    readyz = daemon.get("/readyz")
    assert (readyz.status_code, readyz.text) == (200, "ready: 3 policies\n")
    metrics = samples(daemon.get("/metrics").text)
    assert value(metrics, "gitbot_changes_total", policy="staging", kind="image-update") == 2
    assert value(metrics, "gitbot_changes_total", policy="production", kind="image-update") == 2
    assert value(metrics, "gitbot_cycles_total", policy="staging", outcome="changed") == 2
    assert value(metrics, "gitbot_cycles_total", policy="staging", outcome="unchanged") >= 1
    assert value(metrics, "gitbot_cycles_total", policy="broken", outcome="failed") >= 1
    assert value(metrics, "gitbot_cycles_total", policy="broken", outcome="changed") == 0
    assert value(metrics, "gitbot_errors_total", policy="broken", type="RegistryError") >= 1
    assert value(metrics, "gitbot_api_requests_total", system="registry", outcome="ok") >= 4
    assert value(metrics, "gitbot_api_requests_total", system="github", outcome="ok") >= 3
    assert value(metrics, "gitbot_api_requests_total", system="slack", outcome="ok") >= 3
    assert value(metrics, "gitbot_last_successful_cycle_timestamp_seconds", policy="staging") > time.time() - 60
    assert value(metrics, "gitbot_policies") == 3

    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 10

    # Git: two bot commits on staging, newest first, each with the bot's trailers; nothing else pushed.
    log = git_server.log(staging)
    bot = [c for c in log if c.author_email == "gitbot@example.test"]
    assert len(bot) == 2, [c.subject for c in log]
    assert "1.0.1 -> 1.0.2" in bot[0].subject and "1.0.0 -> 1.0.1" in bot[1].subject
    for commit in bot:
        message = git_server.message(staging, commit.sha)
        assert "Gitbot-Policy: staging" in message and "Gitbot-Action: image-update" in message
    # Production's branch is untouched; its change waits in exactly one open pull request.
    assert "/acme/app:1.0.0\n" in git_server.read_file(production, "clusters/production/app.yaml")
    open_pulls = [p for p in github_fake.list_pulls() if p.state == "open"]
    assert [(p.head, p.base) for p in open_pulls] == [("gitbot/production/app", "main")]
    assert "1.0.2" in open_pulls[0].title
    assert "/acme/app:1.0.2\n" in git_server.read_file(
        production, "clusters/production/app.yaml", "gitbot/production/app"
    )

    # Slack: the failing policy once per distinct failure, the delivered changes of both working policies.
    failed = [p.body["text"] for p in slack.posts if "cycle-failed" in str(p.body)]
    assert failed
    assert all("policy broken" in text for text in failed), (failed, unexpected_failures(daemon))
    delivered = [str(p.body) for p in slack.posts if "· image-update ·" in str(p.body)]
    assert sum("policy staging" in text for text in delivered) == 2
    assert sum("policy production" in text for text in delivered) == 2


def _daemon_notifications(slack: Receiver) -> None:
    """The daemon told each commit, each pull request opened or updated, and the failing cycle, in Block Kit."""
    for post in slack.posts:
        validate_slack(post.body)
    told = [(p.body["blocks"][-1]["elements"][0]["text"], p.body["text"]) for p in slack.posts]
    committed = [text for context, text in told if "policy staging" in context and "image-update" in context]
    assert committed == [
        "Image update: app 1.0.0 -> 1.0.1: committed to main",
        "Image update: app 1.0.1 -> 1.0.2: committed to main",
    ]
    pulls = [text for context, text in told if "policy production" in context]
    assert any(text.startswith("Image update: Pull request opened: ") for text in pulls)
    assert any(text.startswith("Image update: Pull request updated: ") for text in pulls)
    assert all("from daemon" in context for context, _text in told)
