"""Bounded cost, whole cycles: a manifest too large to read is skipped and reported while the other files'
updates are planned; a cycle past its deadline stops before delivering anything."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gitbot.cycle import run_cycle
from gitbot.errors import DeadlineError
from gitbot.manifests import Problem
from tests.scenarios.conftest import PATH, POLICY, ROUTING, WORKLOADS, World, WorldFactory, image_yaml
from tests.scenarios.test_cli import gitbot, policy_args

pytestmark = pytest.mark.real

BIG = f"{PATH}/big.yaml"
# Two MiB of ConfigMap (over the default 1 MiB limit) that would also hold a Deployment's image.
BIG_TEXT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: extra, namespace: test}\n"
    "spec: {template: {spec: {containers: [{name: app, image: extra:1.0.0}]}}}\n---\n"
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n"
    + "".join(f"  k{i}: some image text\n" for i in range(100_000))
)
TOO_BIG = "larger than the 1 MiB limit for a manifest; not read (raise spec.git.maxFileSize)"


def test_an_oversize_file_is_skipped_and_reported_while_the_others_are_planned(make_world: WorldFactory) -> None:
    world = make_world(extra_files={BIG: BIG_TEXT})

    result = run_cycle(world.policy(), world.deps(), deliver=False)

    assert [plan.subject for plan in result.plans] == [
        f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2",
        f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1",
    ]
    assert result.problems == (Problem(BIG, None, TOO_BIG),)


def test_the_file_size_limit_is_a_policy_setting(world: World) -> None:
    world.write_policy()
    text = world.policy_path.read_text(encoding="utf-8")
    world.policy_path.write_text(text.replace("    branch: main\n", "    branch: main\n    maxFileSize: 512\n"))

    result = run_cycle(world.policy(), world.deps(), deliver=False)

    assert result.plans == ()
    too_big = TOO_BIG.replace("1 MiB", "512 bytes")
    assert result.problems[:2] == (Problem(WORKLOADS, None, too_big), Problem(ROUTING, None, too_big))
    assert [p.why.split(":")[1] for p in result.problems[2:]] == [
        " image podinfo-ga",
        " image podinfo-canary",
    ]


def test_a_target_only_in_an_oversize_file_fails_alone(make_world: WorldFactory) -> None:
    world = make_world(extra_files={BIG: BIG_TEXT})
    ref = world.image
    images = (
        image_yaml(ref, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod")
        + image_yaml(ref, "extra", "1.*", "Deployment/test/extra", "app")
        + image_yaml(ref, "podinfo-canary", "0.2.*", "Deployment/test/podinfo-canary", None)
    )
    world.write_policy(images=images)
    policy = world.policy()

    result = run_cycle(policy, world.deps(), deliver=True)

    assert [d.subject for d in result.deliveries] == [
        f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2",
        f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1",
    ]
    line = policy.lines["/spec/images/1/targets/0"]
    assert result.problems == (
        Problem(BIG, None, TOO_BIG),
        Problem(
            policy.source,
            line,
            "spec.images[1].targets[0]: image extra: Deployment/test/extra not found in the files read "
            f"(not read: {BIG}); not planned this cycle",
        ),
    )
    assert str(result.problems[1]).startswith(f"{policy.source}:{line}: spec.images[1].targets[0]: image extra")


def _with_timeout(world: World, timeout: str) -> None:
    world.write_policy()
    world.policy_path.write_text(world.policy_path.read_text(encoding="utf-8") + f"  timeout: {timeout}\n")


@pytest.mark.parametrize("late_stage", ["tags podinfo-ga", "plan"])
def test_a_cycle_past_its_deadline_stops_before_delivering(world: World, late_stage: str) -> None:
    _with_timeout(world, "5m")
    head = world.git.head(world.repo)
    seconds = [0.0]

    def slow_stage(stage: str) -> None:
        # The stage reported here takes six minutes of the five the cycle has.
        if stage == late_stage:
            seconds[0] += 360

    deps = replace(world.deps(), monotonic=lambda: seconds[0], progress=slow_stage)
    with pytest.raises(DeadlineError) as caught:
        run_cycle(world.policy(), deps, deliver=True)

    following = {"tags podinfo-ga": "tags podinfo-canary", "plan": "deliver"}[late_stage]
    assert caught.value.one_line() == (
        f"policy {POLICY}: the cycle ran past its 5m deadline before {following}; nothing delivered"
    )
    assert world.git.head(world.repo) == head


def test_a_pull_request_cycle_past_its_deadline_pushes_no_branch(pr_world: World) -> None:
    _with_timeout(pr_world, "90s")
    assert pr_world.github is not None
    seconds = [0.0]

    def slow_plan(stage: str) -> None:
        if stage == "plan":
            seconds[0] += 91

    deps = replace(pr_world.deps(), monotonic=lambda: seconds[0], progress=slow_plan)
    with pytest.raises(DeadlineError, match="ran past its 1m30s deadline before deliver"):
        run_cycle(pr_world.policy(), deps, deliver=True)

    assert pr_world.git.git(pr_world.repo, "branch", "--list", "gitbot/*").strip() == ""
    assert pr_world.github.list_pulls() == []


def test_a_cycle_within_its_deadline_delivers(world: World) -> None:
    _with_timeout(world, "5m")
    seconds = [0.0]

    def quick(stage: str) -> None:
        seconds[0] += 10

    result = run_cycle(
        world.policy(), replace(world.deps(), monotonic=lambda: seconds[0], progress=quick), deliver=True
    )
    assert [d.outcome for d in result.deliveries] == ["committed", "committed"]


def test_plan_and_once_print_the_problem_files(make_world: WorldFactory) -> None:
    world = make_world(extra_files={BIG: BIG_TEXT})

    planned = gitbot(world, "plan", *policy_args(world))
    assert planned.returncode == 0, planned.stderr
    assert f"problem: {BIG}: {TOO_BIG}" in planned.stdout.splitlines()
    assert f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2  [plan " in planned.stdout

    done = gitbot(world, "once", *policy_args(world))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["committed", "committed", "problem:"]
    assert lines[-1] == f"problem: {BIG}: {TOO_BIG}"
