"""`gitbot analyze`, `promote`, `pause`, `resume`, `once` and `status` as a person runs them: subprocesses on
the wall clock, against the real git server and a Prometheus whose data runs up to now."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.scenarios_canary.conftest import POLICY, SLOW, World, WorldFactory, weights
from tests.scenarios_canary.test_progression import at, trailers
from tests.support.cli import cli_env, run_gitbot
from tests.support.gitserver import GitServer
from tests.support.prometheus import PrometheusServer, Scenario, start_prometheus

# Both data sets began 20 minutes before the module's first test and run 5 minutes past it; the canary
# takes 10 % of the requests from the first minute on.
LIVE_SHARE = ((0.0, 0.0), (60.0, 10.0))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    scenarios = (
        Scenario(namespace="live", start=start, duration=timedelta(minutes=25), canary_share=LIVE_SHARE),
        Scenario(
            namespace="live-slow", start=start, duration=timedelta(minutes=25), canary_share=LIVE_SHARE, canary=SLOW
        ),
    )
    server = start_prometheus(tmp_path_factory.mktemp("live-prometheus"), *scenarios)
    yield server
    server.stop()


def gitbot(world: World, git_server: GitServer, *args: str) -> subprocess.CompletedProcess[str]:
    assert world.policy_path is not None
    home = world.policy_path.parent
    env = cli_env(
        HOME=str(home),
        SCENARIO_GIT_TOKEN=git_server.token,
        GITBOT_CACHE_DIR=str(home / "cli-cache"),
        GITBOT_POLICIES=str(home),
    )
    return run_gitbot(*args, env=env, cwd=home)


def ok(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a usage error prints (exit 2, nothing on stdout)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    return line


def test_analyze_prints_each_check_and_the_verdict(
    make_world: WorldFactory, live: PrometheusServer, git_server: GitServer
) -> None:
    world = make_world("live", prometheus_url=live.url, canary_weight=10)
    head = world.log()[0].sha

    lines = ok(gitbot(world, git_server, "analyze", "podinfo"))
    image = f"{world.registry.host}/{world.image_repo}"
    assert lines[:10] == [
        "Name:          podinfo",
        f"Policy:        {POLICY}",
        "Route:         VirtualService/test/podinfo",
        "Status:        ◌ Progressing",
        "Message:       analysis passed at 10%: step to 60%",
        "Step:          1/3 (10, 60, 100)",
        "SetWeight:     10",
        "ActualWeight:  10.0 (observed share of requests)",
        f"Images:        {image}:0.1.1 (stable)",
        f"               {image}:0.2.1 (canary)",
    ]
    assert re.fullmatch(
        r"Analysis:      ✔ pass \(all checks passed\), 5m to \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", lines[10]
    )
    rows = [line.split() for line in lines[11:]]
    assert [row[:3] for row in rows] == [
        ["✔", "pass", "requests"],
        ["✔", "pass", "success-rate"],
        ["✔", "pass", "latency-p99"],
    ]
    assert rows[0][3:7] == ["canary", "600", "GA", "5400"] and rows[2][3:9] == [
        "canary",
        "175.0",
        "ms",
        "GA",
        "175.0",
        "ms",
    ]
    assert " ".join(rows[2][9:]) == "<= 1.5x GA 1.00x GA"

    payload = json.loads("\n".join(ok(gitbot(world, git_server, "analyze", "podinfo", "--policy", POLICY, "--json"))))
    assert {k: payload[k] for k in ("canary", "policy", "route", "weight", "step", "paused", "verdict", "summary")} == {
        "canary": "podinfo",
        "policy": POLICY,
        "route": "VirtualService/test/podinfo",
        "weight": 10,
        "step": "step 1 of 3",
        "paused": None,
        "verdict": "pass",
        "summary": "all checks passed",
    }
    assert payload["share"] == pytest.approx(10)
    start, end = (datetime.fromisoformat(moment) for moment in payload["window"])
    assert end - start == timedelta(minutes=5) and abs(datetime.now(UTC) - end) < timedelta(minutes=1)
    checks = {c["name"]: c for c in payload["checks"]}
    assert list(checks) == ["requests", "success-rate", "latency-p99"]
    assert set(checks["latency-p99"]) == {"name", "verdict", "canary", "stable", "threshold", "detail"}
    assert (checks["latency-p99"]["canary"], checks["latency-p99"]["stable"]) == pytest.approx((175, 175))
    assert checks["success-rate"]["threshold"] == ">= 99%, >= GA - 0.5pp"
    assert all(c["verdict"] == "pass" for c in payload["checks"])
    assert world.log()[0].sha == head, "analyze delivers nothing"

    slow = make_world("live-slow", prometheus_url=live.url, canary_weight=10)
    failing = json.loads("\n".join(ok(gitbot(slow, git_server, "analyze", "podinfo", "--json"))))
    assert (failing["verdict"], failing["summary"]) == ("fail", "p99 2.14x GA")
    assert (failing["status"], failing["message"]) == ("Degraded", "analysis failed at 10%: roll back to 0%")
    assert failing["steps"] == [10, 60, 100]
    assert failing["images"]["canary"] == [f"{slow.registry.host}/{slow.image_repo}:0.2.1"]
    text = ok(gitbot(slow, git_server, "analyze", "podinfo"))
    assert "Status:        ✖ Degraded" in text
    (row,) = [line for line in text if "latency-p99" in line]
    assert row.split()[:3] == ["✖", "fail", "latency-p99"] and row.endswith("2.14x GA")
    latency = next(c for c in failing["checks"] if c["name"] == "latency-p99")
    assert latency["verdict"] == "fail" and latency["canary"] == pytest.approx(375)

    unknown = refused(gitbot(world, git_server, "analyze", "nginx"))
    assert unknown.startswith("gitbot: error: no policy in ") and unknown.endswith(" has a canary named 'nginx'")


# A credential no masker knows; the Prometheus below quotes it in every error it answers.
CANARY_SECRET = "Zq7canaryS3cret0x5f"
REFUSED = f"refused Bearer {CANARY_SECRET} (also tried ?access_token={CANARY_SECRET} and ghp_{CANARY_SECRET * 2})"


@pytest.fixture
def refusing_prometheus() -> Iterator[str]:
    """A loopback Prometheus API that answers every query HTTP 401 with an error naming the credential."""
    body = json.dumps({"status": "error", "errorType": "unauthorized", "error": REFUSED}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_analyze_never_prints_a_credential_a_prometheus_error_quotes(
    make_world: WorldFactory, refusing_prometheus: str, git_server: GitServer
) -> None:
    world = make_world("live", prometheus_url=refusing_prometheus, canary_weight=10)

    as_json = gitbot(world, git_server, "analyze", "podinfo", "--json")
    as_text = gitbot(world, git_server, "--debug", "analyze", "podinfo")

    for done in (as_json, as_text):
        assert done.returncode == 0, done.stderr
        assert CANARY_SECRET not in done.stdout + done.stderr
    payload = json.loads(as_json.stdout)
    assert payload["verdict"] == "inconclusive"
    assert f"Prometheus at {refusing_prometheus} answered HTTP 401: refused Bearer ***" in payload["summary"]
    assert "refused Bearer ***" in as_text.stdout


def test_pause_resume_promote_and_status_from_the_command_line(
    make_world: WorldFactory, live: PrometheusServer, git_server: GitServer
) -> None:
    world = make_world("live", prometheus_url=live.url, canary_weight=10)
    status = ok(gitbot(world, git_server, "status", "--policy", POLICY))
    assert "  canary podinfo:" in status
    block = status[status.index("  canary podinfo:") + 1 :]
    assert block[3:7] == [
        "    Status:        ◌ Progressing",
        "    Message:       analysis passed at 10%: step to 60%",
        "    Step:          1/3 (10, 60, 100)",
        "    SetWeight:     10",
    ]
    assert [line.split()[:3] for line in block[-3:]] == [
        ["✔", "pass", "requests"],
        ["✔", "pass", "success-rate"],
        ["✔", "pass", "latency-p99"],
    ]

    paused = ok(gitbot(world, git_server, "pause", "podinfo", "--reason", "load test tonight"))
    assert paused == [f"paused podinfo ({POLICY}) at {world.log()[0].sha}"]
    assert "load test tonight" in world.server.message(world.repo)
    marker = world.log()[0].sha
    again = ok(gitbot(world, git_server, "pause", "podinfo"))
    assert again == [
        f"canary podinfo ({POLICY}) is already paused (paused by gitbot: load test tonight); nothing recorded"
    ]
    assert world.log()[0].sha == marker
    status = ok(gitbot(world, git_server, "status", "--policy", POLICY))
    assert "    Status:        ॥ Paused" in status
    assert "    Paused:        paused by gitbot: load test tonight" in status
    assert "    Message:       paused: paused by gitbot: load test tonight" in status
    # The canary has dwelt at 10 % for 19 minutes and passes: only the pause holds it.
    head = world.log()[0].sha
    assert ok(gitbot(world, git_server, "once", "--policy", POLICY)) == [
        f"{POLICY}: nothing to change at {head[:12]}",
        "canary podinfo holds at 10%: paused: paused by gitbot: load test tonight",
    ]

    resumed = ok(gitbot(world, git_server, "resume", "podinfo"))
    assert resumed == [f"resumed podinfo ({POLICY}) at {world.log()[0].sha}"]
    assert ok(gitbot(world, git_server, "resume", "podinfo")) == [
        f"canary podinfo ({POLICY}) is not paused; nothing recorded"
    ]
    stepped = ok(gitbot(world, git_server, "once", "--policy", POLICY))
    assert stepped == [f"committed {world.log()[0].sha}  gitbot({POLICY}): podinfo canary 10% -> 60%"]
    assert weights(world.routes_text()) == at(60)

    # Just stepped: the dwell is (nearly) the whole interval, in whole seconds.
    status = ok(gitbot(world, git_server, "status", "--policy", POLICY))
    assert "    Step:          2/3 (10, 60, 100)" in status
    (dwell,) = [line for line in status if line.startswith("    Dwell left:")]
    found = re.fullmatch(r"    Dwell left:    (\d+)m(\d\d)s", dwell)
    assert found is not None, dwell
    assert 9 * 60 <= int(found.group(1)) * 60 + int(found.group(2)) <= 10 * 60

    promoted = ok(gitbot(world, git_server, "promote", "podinfo", "--policy", POLICY))
    assert promoted == [f"committed {world.log()[0].sha}  gitbot({POLICY}): podinfo canary 60% -> 100%"]
    message = world.server.message(world.repo)
    assert ("Gitbot-From", "60") in trailers(message) and ("Gitbot-To", "100") in trailers(message)
    head = world.log()[0].sha

    # Run again: the step by hand is not made twice, and a move to where the canary is changes nothing.
    assert ok(gitbot(world, git_server, "promote", "podinfo")) == [
        f"already promoted by {head[:7]}: gitbot({POLICY}): podinfo canary 60% -> 100%; its last step"
    ]
    assert ok(gitbot(world, git_server, "promote", "podinfo", "--to", "100")) == [
        "canary podinfo is already at 100%; nothing to change"
    ]
    # Help and errors state the same range; going down is no promotion, and the hint says what is.
    assert refused(gitbot(world, git_server, "promote", "podinfo", "--to", "150")) == (
        "gitbot: error: --to must be a weight in 1..100, above the canary's current weight; got 150"
    )
    helped = " ".join(ok(gitbot(world, git_server, "promote", "--help"))).split()
    assert "above the canary's current weight (1..100)." in " ".join(helped)
    down = gitbot(world, git_server, "promote", "podinfo", "--to", "10")
    assert down.returncode == 2 and down.stdout == ""
    assert down.stderr.splitlines() == [
        "gitbot: error: --to 10 would move canary podinfo down from 100%: promote only moves a canary up",
        f"gitbot: hint: roll it back with `gitbot rollback podinfo --policy {POLICY}` or hold it with "
        "`gitbot pause podinfo`",
    ]
    assert world.log()[0].sha == head
    assert weights(world.routes_text()) == at(100)
    # seed, pause, resume, 60 %, 100 %.
    assert world.validate_every_version() == 5


def test_once_and_plan_say_why_an_inconclusive_canary_holds(
    make_world: WorldFactory, live: PrometheusServer, git_server: GitServer
) -> None:
    # 600 canary and 5,400 GA requests in the window: both short of what this policy asks for.
    world = make_world("live", prometheus_url=live.url, canary_weight=10, min_requests=10000)
    head = world.log()[0].sha
    why = "canary podinfo holds at 10%: analysis inconclusive: canary has 600 requests, needs 10000; " + (
        "GA has 5400 requests, needs 10000"
    )
    assert ok(gitbot(world, git_server, "once", "--policy", POLICY)) == [
        f"{POLICY}: nothing to change at {head[:12]}",
        why,
    ]
    assert ok(gitbot(world, git_server, "plan", "--policy", POLICY)) == [
        f"{POLICY}: nothing to change at {head[:12]}",
        why,
    ]
    assert world.log()[0].sha == head


def test_analyze_shows_each_sequential_checks_evidence_in_text_and_json(
    make_world: WorldFactory, live: PrometheusServer, git_server: GitServer
) -> None:
    checks = ("{name: error-rate, test: sequential, alpha: 0.05}", "{name: latency, test: sequential, alpha: 0.05}")
    world = make_world("live", prometheus_url=live.url, canary_weight=10, checks=checks)
    payload = json.loads("\n".join(ok(gitbot(world, git_server, "analyze", "podinfo", "--json"))))
    by_name = {c["name"]: c for c in payload["checks"]}
    assert list(by_name) == ["error-rate", "latency"]
    latency = by_name["latency"]
    assert latency["sequential"] is True and latency["verdict"] == "pass"
    assert latency["effect"] == pytest.approx(1.0)
    assert 0 < latency["e_value"] < 20 and latency["p_value"] == pytest.approx(min(1.0, 1 / latency["e_value"]))
    # No step in history: counted from one dwell and window (15 minutes) back, 10 % of 20 requests a second.
    assert latency["requests"]["canary"] == pytest.approx(1800, rel=0.05)
    assert latency["requests"]["stable"] == pytest.approx(16200, rel=0.05)
    since = datetime.fromisoformat(latency["since"])
    assert abs(datetime.now(UTC) - timedelta(minutes=15) - since) < timedelta(minutes=1)
    assert latency["stable_period"] is None

    text = ok(gitbot(world, git_server, "analyze", "podinfo"))
    (row,) = [line for line in text if " latency " in line]
    assert row.split()[:3] == ["✔", "pass", "latency"]
    assert f"e {latency['e_value']:.3g}, effect 1.00x" in row
