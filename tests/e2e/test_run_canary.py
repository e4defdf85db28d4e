"""`gitbot run` moves a canary on its own: real git server, real Prometheus, the system clock.

The Prometheus data ends a little after now, with the canary healthy and receiving the 10 percent the
seed commits; the daemon must see the step has taken effect, judge the analysis a pass, commit the next
step (10 -> 60) and then wait, because the data keeps the canary's share at 10 percent. /metrics shows the
canary's weight and verdict, and SIGTERM stops the daemon with exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.e2e.test_run_daemon import Daemon, samples, value, wait_for
from tests.support.cli import coverage_env
from tests.support.gitserver import GitServer
from tests.support.prometheus import Scenario, start_prometheus
from tests.support.registry import free_port

ROOT = Path(__file__).resolve().parents[2]

ROUTE = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: podinfo, namespace: test}
spec:
  hosts: [podinfo]
  http:
    - route:
        - destination: {host: podinfo, subset: ga}
          weight: 90
        - destination: {host: podinfo, subset: canary}
          weight: 10
"""


def canary_policy(git_url: str, prometheus_url: str) -> str:
    return f"""\
apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata: {{name: mesh}}
spec:
  git: {{url: "{git_url}", paths: [clusters], tokenEnv: GIT_TOKEN, username: gitbot,
        author: {{name: gitbot, email: gitbot@example.test}}}}
  schedule: {{interval: 1s}}
  canaries:
    - name: podinfo
      route: VirtualService/test/podinfo
      stable: {{subset: ga}}
      canary: {{subset: canary}}
      steps: [10, 60, 100]
      interval: 1s
      analysis:
        prometheus: {{url: "{prometheus_url}"}}
        window: 5m
        minRequests: 10
        stableWorkload: podinfo-ga
        canaryWorkload: podinfo-canary
        checks:
          - {{name: success-rate, min: 99}}
          - {{name: latency-p99, maxRatio: 1.5}}
"""


def test_the_daemon_steps_a_healthy_canary_and_reports_it(tmp_path: Path, git_server: GitServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    scenario = Scenario(start=now - timedelta(minutes=40), duration=timedelta(minutes=45))
    prometheus = start_prometheus(tmp_path / "prometheus", scenario)
    repo = git_server.unique_name("mesh")
    git_server.create_repo(repo, {"clusters/route.yaml": ROUTE})
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "mesh.yaml").write_text(canary_policy(git_server.url_for(repo), prometheus.url))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **coverage_env(),
        "HOME": str(tmp_path / "home"),
        "GITBOT_CACHE_DIR": str(tmp_path / "cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONPATH": str(ROOT),
        "GIT_TOKEN": git_server.token,
    }
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    command = [sys.executable, "-m", "gitbot", "run", "--policies", str(policies), "--port", str(port)]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([*command, "--host", "127.0.0.1"], stdout=out, stderr=err, env=env, cwd=tmp_path)
    daemon = Daemon(process, port, stdout, stderr)
    try:

        def stepped() -> bool:
            return "weight: 60" in git_server.read_file(repo, "clusters/route.yaml")

        wait_for("the step to 60%", stepped, daemon, timeout=30)

        def reported() -> bool:
            try:
                metrics = samples(daemon.get("/metrics").text)
            except httpx.TransportError:
                return False
            return value(metrics, "gitbot_canary_weight_percent", policy="mesh", canary="podinfo") == 60

        wait_for("the canary weight on /metrics", reported, daemon, timeout=15)
        metrics = samples(daemon.get("/metrics").text)
        verdict = value(metrics, "gitbot_canary_verdict", policy="mesh", canary="podinfo", gitbot_canary_verdict="pass")
        assert verdict == 1
        assert value(metrics, "gitbot_changes_total", policy="mesh", kind="canary-step") == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        prometheus.stop()

    bot = [c for c in git_server.log(repo) if c.author_email == "gitbot@example.test"]
    # One step: the data keeps the canary's share at 10 percent, so the 60 percent step never takes effect.
    assert [c.subject for c in bot] == ["gitbot(mesh): podinfo canary 10% -> 60%"]
    message = git_server.message(repo, bot[0].sha)
    assert "Gitbot-Action: canary-step" in message and "| success-rate |" in message
    assert git_server.token not in daemon.output()
