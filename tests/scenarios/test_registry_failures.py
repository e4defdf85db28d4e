"""Two registries, one broken: the real `docker-registry` serves the GA image, a second registry answers
garbage, refuses, or is not there at all. Each image's tag lookup fails or succeeds alone: the healthy image is
committed (or its pull request opened), the broken one keeps its tag and its open pull request, and the failure
(image, registry host, one-line error) is in the cycle's result, in `gitbot once`/`plan`/`status` (exit 1
after the rest is done) and in the daemon's log and /metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from gitbot.commands.runner import CycleRunner
from gitbot.cycle import run_cycle
from gitbot.logs import FIELDS, SecretMasker
from gitbot.service import Service, ServiceMetrics
from tests.scenarios.conftest import POLICY, WORKLOADS, World, image_yaml
from tests.scenarios.test_cli import gitbot, policy_args
from tests.support.registry import LoopbackServer, QuietHandler, free_port, serve

pytestmark = pytest.mark.real

BROKEN_REPO = "acme/web"


class GarbageHandler(QuietHandler):
    def do_GET(self) -> None:
        self.send_bytes(200, b"<html>not a registry</html>", {"Content-Type": "text/html"})


class RefusingHandler(QuietHandler):
    def do_GET(self) -> None:
        self.send_json(403, {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]})


@pytest.fixture
def garbage() -> Iterator[LoopbackServer]:
    server = serve(GarbageHandler)
    yield server
    server.stop()


@pytest.fixture
def refusing() -> Iterator[LoopbackServer]:
    server = serve(RefusingHandler)
    yield server
    server.stop()


def host_of(server: LoopbackServer) -> str:
    return server.url.removeprefix("http://")


def canary_on(world: World, host: str) -> None:
    """The canary Deployment runs an image of registry `host`; its image policy lists tags there."""
    text = world.workloads().replace(f'"{world.image}:0.2.0"', f'"{host}/{BROKEN_REPO}:0.2.0"')
    world.git.commit_as_other(world.repo, {WORKLOADS: text}, "web comes from another registry")
    images = image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod") + image_yaml(
        f"{host}/{BROKEN_REPO}", "podinfo-canary", "0.2.*", "Deployment/test/podinfo-canary", None
    )
    world.write_policy(images=images)


@pytest.mark.parametrize("broken", ["garbage", "refusing"])
def test_the_healthy_image_is_committed_and_the_failure_reported(
    world: World, broken: str, request: pytest.FixtureRequest
) -> None:
    host = host_of(request.getfixturevalue(broken))
    canary_on(world, host)

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [(d.name, d.outcome) for d in result.deliveries] == [("podinfo-ga", "committed")]
    assert world.workloads().count(f"{world.image}:0.1.2   # GA") == 1
    assert f'"{host}/{BROKEN_REPO}:0.2.0"' in world.workloads(), "the broken image keeps its tag"
    (failure,) = result.failures
    assert (failure.image, failure.host) == ("podinfo-canary", host)
    line = failure.one_line()
    assert line.startswith(f"image podinfo-canary: tag lookup at registry {host} failed: ")
    assert ("not JSON" if broken == "garbage" else "403") in line
    assert "\n" not in line


def test_cli_delivers_the_rest_then_exits_1_naming_image_and_registry(world: World) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    canary_on(world, host)

    done = gitbot(world, "once", *policy_args(world))

    assert done.returncode == 1, done.stderr
    log = world.git.log(world.repo)
    assert done.stdout.splitlines() == [f"committed {log[0].sha}  gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2"]
    (error,) = done.stderr.splitlines()
    assert error.startswith(f"gitbot: error: image podinfo-canary: tag lookup at registry {host} failed: ")
    assert "cannot reach" in error
    assert world.env["GITBOT_GIT_TOKEN"] not in done.stdout + done.stderr

    planned = gitbot(world, "plan", *policy_args(world))
    assert planned.returncode == 1
    assert planned.stdout.startswith(f"{POLICY}: nothing to change at ")
    assert f"image podinfo-canary: tag lookup at registry {host} failed" in planned.stderr

    status = gitbot(world, "status", *policy_args(world))
    assert status.returncode == 1
    lines = status.stdout.splitlines()
    assert "  podinfo-ga: running 0.1.2; newest allowed 0.1.2" in lines
    at = lines.index("  podinfo-canary: running 0.2.0; newest allowed unknown (tag lookup failed)")
    assert lines[at + 1].startswith(f"    image podinfo-canary: tag lookup at registry {host} failed: cannot reach")


def test_a_lookup_that_retrying_cannot_fix_exits_2_not_1(world: World, refusing: LoopbackServer) -> None:
    canary_on(world, host_of(refusing))

    done = gitbot(world, "once", *policy_args(world))

    # The registry refused access (403): a remote failure, but not one a retry fixes.
    assert done.returncode == 2, done.stderr
    assert done.stdout.startswith("committed ")
    (error,) = done.stderr.splitlines()
    assert "403" in error
    assert gitbot(world, "plan", *policy_args(world)).returncode == 2
    assert gitbot(world, "status", *policy_args(world)).returncode == 2


def test_the_open_pull_request_of_a_failing_image_stays_open(pr_world: World, garbage: LoopbackServer) -> None:
    world = pr_world
    first = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in first.deliveries] == ["opened", "opened"]
    # The canary's registry breaks (its policy now lists tags at a registry that answers garbage).
    images = image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod") + image_yaml(
        f"{host_of(garbage)}/{BROKEN_REPO}", "podinfo-canary", "0.2.*", "Deployment/test/podinfo-canary", None
    )
    world.write_policy(images=images)

    broken = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [(d.name, d.outcome) for d in broken.deliveries] == [("podinfo-ga", "unchanged")]
    assert [f.image for f in broken.failures] == ["podinfo-canary"]
    assert world.github is not None
    assert sorted((p.head, p.state) for p in world.github.list_pulls()) == [
        (f"gitbot/{POLICY}/podinfo-canary", "open"),
        (f"gitbot/{POLICY}/podinfo-ga", "open"),
    ]
    assert all(world.github.comments_on(p.number) == [] for p in world.github.list_pulls())


def test_the_daemon_logs_and_counts_the_failure_and_delivers_the_rest(
    world: World, garbage: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    host = host_of(garbage)
    canary_on(world, host)
    policy = world.policy()
    metrics = ServiceMetrics()
    runner = CycleRunner(
        [policy],
        env=world.env,
        stop=threading.Event(),
        masker=SecretMasker(),
        record_request=metrics.api_request,
    )

    service = Service([policy], runner, port=0, host="127.0.0.1", metrics=metrics, masker=SecretMasker())

    with caplog.at_level(logging.INFO, logger="gitbot.service"):
        service.jobs[POLICY]()  # one scheduled tick, as the scheduler runs it

    (record,) = [r for r in caplog.records if r.name == "gitbot.service" and r.getMessage() == "cycle"]
    fields = getattr(record, FIELDS)
    assert record.levelno == logging.WARNING
    assert fields["outcome"] == "changed" and fields["changes"] == {"image-update": 1}
    (line,) = fields["lookup_failures"]
    assert line.startswith(f"image podinfo-canary: tag lookup at registry {host} failed: ")
    assert service.jobs[POLICY].skip == 0, "a cycle that delivered the rest does not back off"
    exposition = metrics.exposition().decode()
    assert f'gitbot_image_lookup_failures_total{{host="{host}",image="podinfo-canary",policy="{POLICY}"}} 1.0' in (
        exposition
    )
    assert 'gitbot_api_requests_total{outcome="error",system="registry"}' in exposition
    assert world.workloads().count(f"{world.image}:0.1.2   # GA") == 1
