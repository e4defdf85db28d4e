"""One bad file does not stop a repository: a manifest that does not parse is skipped and reported while the
rest of the cycle is delivered; a canary whose route it holds is an error of its own; fixed, it is taken."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gitbot.cycle import run_cycle
from gitbot.manifests import Problem, ScanCache, blob_id
from tests.scenarios.conftest import PATH, POLICY, ROUTING, ROUTING_TEXT, WORKLOADS, World, WorldFactory
from tests.scenarios.test_cli import gitbot, policy_args
from tests.support.gitserver import OTHER_EMAIL

pytestmark = pytest.mark.real

# A chart vendored beside the manifests: its templates are Go templates, not YAML.
CHART = f"{PATH}/charts/podinfo/templates/deployment.yaml"
CHART_TEXT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ template "podinfo.fullname" . }}
  labels:
    {{- include "podinfo.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  template:
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"""
CHART_WHY = "not valid YAML: expected the node content, but found '-'; not scanned"
# A person's edit of the VirtualService left half done: the canary's weight given twice.
ROUTING_BROKEN = ROUTING_TEXT.replace("          weight: 0\n", "          weight: 0\n          weight: 10\n")
ROUTING_LINE = ROUTING_TEXT.splitlines().index("          weight: 0") + 2
CANARY = """\
  canaries:
    - name: podinfo
      route: VirtualService/test/podinfo
      stable: {subset: ga}
      canary: {subset: canary}
      image: podinfo-canary
      steps: [10, 60, 100]
      analysis:
        prometheus: {url: "http://127.0.0.1:9"}
        window: 5m
        stableWorkload: podinfo-ga
        canaryWorkload: podinfo-canary
        checks:
          - {name: success-rate, min: 99}
"""


def with_canary(world: World) -> None:
    world.write_policy()
    world.policy_path.write_text(world.policy_path.read_text(encoding="utf-8") + CANARY, encoding="utf-8")


def subjects(world: World) -> list[str]:
    return [commit.subject for commit in world.git.log(world.repo)]


def test_a_template_beside_the_manifests_is_listed_and_the_update_is_committed(make_world: WorldFactory) -> None:
    world = make_world(extra_files={CHART: CHART_TEXT})

    done = gitbot(world, "once", *policy_args(world))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["committed", "committed", "problem:"]
    assert lines[-1] == f"problem: {CHART}:6: {CHART_WHY}"
    assert done.stderr == ""
    assert subjects(world)[:2] == [
        f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1",
        f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2",
    ]
    assert world.workloads() == world.expected_workloads(ga="0.1.2", canary="0.2.1")
    assert world.git.read_file(world.repo, CHART, "main") == CHART_TEXT

    # The scan cache keeps the broken blob's failure, so the next cycle does not parse it again.
    (cache_file,) = Path(world.env["GITBOT_CACHE_DIR"]).rglob(ScanCache.FILE_NAME)
    failures = json.loads(cache_file.read_text(encoding="utf-8"))["failures"]
    assert failures[blob_id(CHART_TEXT.encode())]["why"] == CHART_WHY

    # Run again, nothing new is done, and the same file is listed.
    again = gitbot(world, "once", *policy_args(world))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"{POLICY}: nothing to change at {str(world.git.head(world.repo))[:12]}",
        f"problem: {CHART}:6: {CHART_WHY}",
    ]
    assert len(subjects(world)) == 3


def test_plan_and_status_list_the_file(make_world: WorldFactory) -> None:
    world = make_world(extra_files={CHART: CHART_TEXT})

    planned = gitbot(world, "plan", *policy_args(world))
    status = gitbot(world, "status", *policy_args(world))

    assert planned.returncode == 0, planned.stderr
    assert f"problem: {CHART}:6: {CHART_WHY}" in planned.stdout.splitlines()
    assert status.returncode == 0, status.stderr
    assert f"  problem: {CHART}:6: {CHART_WHY}" in status.stdout.splitlines()
    assert "  podinfo-ga: running 0.1.0; newest allowed 0.1.2" in status.stdout.splitlines()


def test_a_canary_whose_route_does_not_parse_errors_alone_and_the_images_land(make_world: WorldFactory) -> None:
    world = make_world(extra_files={ROUTING: ROUTING_BROKEN})
    with_canary(world)
    policy = world.policy()
    route_line = policy.lines["/spec/canaries/0/route"]
    left_out = (
        f"{world.policy_path}:{route_line}: spec.canaries[0].route: canary podinfo: VirtualService/test/podinfo "
        f"not found in the files read (not parsed: {ROUTING}:{ROUTING_LINE}); not planned this cycle"
    )

    done = gitbot(world, "once", *policy_args(world))

    assert done.returncode == 2, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["committed", "committed", "problem:"]
    assert lines[-1] == f"problem: {ROUTING}:{ROUTING_LINE}: duplicate key 'weight'; not scanned"
    assert done.stderr.splitlines() == [f"gitbot: error: {left_out}"]
    assert world.workloads() == world.expected_workloads(ga="0.1.2", canary="0.2.1")
    assert world.git.read_file(world.repo, ROUTING, "main") == ROUTING_BROKEN

    # A command about that canary says the same, at once.
    for command in ("analyze", "promote"):
        refused = gitbot(world, command, "podinfo", *policy_args(world))
        assert refused.returncode == 2
        assert refused.stderr.splitlines()[0] == f"gitbot: error: {left_out}"
    status = gitbot(world, "status", *policy_args(world))
    assert status.returncode == 2
    assert f"  problem: {left_out}" in status.stdout.splitlines()
    assert "  canary podinfo:" not in status.stdout

    again = gitbot(world, "once", *policy_args(world))
    assert (again.returncode, again.stderr) == (2, done.stderr)
    assert again.stdout.startswith(f"{POLICY}: nothing to change at ")


def test_a_route_fixed_in_a_later_commit_is_taken_by_the_next_cycle(make_world: WorldFactory) -> None:
    world = make_world(extra_files={ROUTING: ROUTING_BROKEN})
    with_canary(world)
    policy = world.policy()

    first = run_cycle(policy, world.deps(), deliver=True)

    assert [d.subject for d in first.deliveries] == [
        f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2",
        f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1",
    ]
    assert [(p.file, p.line, p.blocks) for p in first.problems] == [
        (ROUTING, ROUTING_LINE, None),
        (str(world.policy_path), policy.lines["/spec/canaries/0/route"], "podinfo"),
    ]
    assert first.canaries == ()

    world.git.commit_as_other(world.repo, {ROUTING: ROUTING_TEXT}, "Finish the canary route")
    second = run_cycle(policy, world.deps(), deliver=True)

    assert second.problems == ()
    assert [outcome.name for outcome in second.canaries] == ["podinfo"]
    assert [d.subject for d in second.deliveries] == [f"gitbot({POLICY}): podinfo canary 0% -> 10%"]
    assert re.search(r"weight: 10\n", world.git.read_file(world.repo, ROUTING, "main"))
    assert world.git.log(world.repo)[0].author_email == "gitbot@acme.example"
    assert world.git.log(world.repo)[1].author_email == OTHER_EMAIL


def test_a_template_that_marks_an_image_holds_only_that_image(make_world: WorldFactory) -> None:
    marked = CHART_TEXT + '          # {"$imagepolicy": "flux-system:podinfo-canary"}\n'
    world = make_world(extra_files={CHART: marked})
    policy = world.policy()

    result = run_cycle(policy, world.deps(), deliver=True)

    assert [d.subject for d in result.deliveries] == [f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2"]
    assert result.problems == (
        Problem(CHART, 6, CHART_WHY),
        Problem(
            str(world.policy_path),
            policy.lines["/spec/images/1"],
            "spec.images[1]: image podinfo-canary: a field marked for it is in a file that does not parse "
            f"(not parsed: {CHART}:6); not planned this cycle",
        ),
    )
    assert world.workloads() == world.expected_workloads(ga="0.1.2")
    assert WORKLOADS in {c.file for p in result.plans for c in p.changes}


def test_validate_warns_about_a_file_that_does_not_parse_and_fails_a_canary_it_holds(
    make_world: WorldFactory,
) -> None:
    world = make_world(extra_files={CHART: CHART_TEXT})
    args = ["validate", "--policies", str(world.policy_path.parent), "--check-manifests"]
    world.write_policy()

    passed = gitbot(world, *args)

    assert passed.returncode == 0, passed.stderr
    assert f"gitbot: warning: problem: {CHART}:6: {CHART_WHY}" in passed.stderr.splitlines()
    assert f"{POLICY}: manifests bind; 2 planned change(s) at " in passed.stdout

    broken = make_world(extra_files={ROUTING: ROUTING_BROKEN})
    with_canary(broken)
    failed = gitbot(broken, "validate", "--policies", str(broken.policy_path.parent), "--check-manifests")

    assert failed.returncode == 2
    errors = [line for line in failed.stderr.splitlines() if line.startswith(f"{POLICY}: manifests: error: ")]
    assert len(errors) == 1 and errors[0].endswith(
        f"canary podinfo: VirtualService/test/podinfo not found in the files read "
        f"(not parsed: {ROUTING}:{ROUTING_LINE}); not planned this cycle"
    )
