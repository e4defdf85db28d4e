"""Images and canaries whose named target may sit in a file too large to read are set aside, alone."""

from __future__ import annotations

from pathlib import Path

from gitbot.config import load_policy
from gitbot.cycle import set_aside_unbound
from gitbot.domain import Target
from gitbot.manifests import Problem
from tests.unit.test_config import CANARY, write

SKIPPED = Problem("clusters/big.yaml", None, "larger than the 1 MiB limit for a manifest; not read")


def image(resource: str, container: str | None = None) -> Target:
    return Target("clusters/a.yaml", 0, "/spec", 3, 5, "image", resource, "x:1", container=container)


def weight(route: str) -> Target:
    return Target("clusters/r.yaml", 0, "/spec/http/0/route/0/weight", 9, 17, "weight", route, "100")


def test_nothing_is_set_aside_without_problem_files(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    problems: list[Problem] = []
    assert set_aside_unbound(policy, [], problems) is policy
    assert problems == []


def test_an_image_not_found_is_set_aside_with_the_canary_that_runs_it(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    ga, canary = policy.spec.images
    route = policy.spec.canaries[0].route
    problems = [SKIPPED]
    targets = [image(t.resource, t.container) for t in ga.targets] + [weight(route)]

    kept = set_aside_unbound(policy, targets, problems)

    assert [i.name for i in kept.spec.images] == [ga.name]
    assert kept.spec.canaries == ()
    assert [(p.file, p.line) for p in problems[1:]] == [
        (policy.source, policy.lines["/spec/images/1/targets/0"]),
        (policy.source, policy.lines["/spec/canaries/0"]),
    ]
    assert problems[1].why.startswith(f"spec.images[1].targets[0]: image {canary.name}: ")
    assert problems[1].why.endswith("(not read: clusters/big.yaml); not planned this cycle")
    assert problems[2].why.startswith(f"spec.canaries[0]: canary podinfo: its image {canary.name} is set aside")
    # Places in the policy file still point at the lines of the entries that were kept.
    assert kept.where("/spec/images/0/filter") == policy.where("/spec/images/0/filter")


def test_later_entries_keep_their_own_lines_when_an_earlier_one_is_set_aside(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    canary = policy.spec.images[1]
    route = policy.spec.canaries[0].route
    problems = [SKIPPED]
    targets = [image(t.resource, t.container) for t in canary.targets] + [weight(route)]

    kept = set_aside_unbound(policy, targets, problems)

    assert [i.name for i in kept.spec.images] == [canary.name]
    assert [c.name for c in kept.spec.canaries] == ["podinfo"]
    assert kept.lines["/spec/images/0/filter"] == policy.lines["/spec/images/1/filter"]
    assert "/spec/images/1/filter" not in kept.lines
    assert [p.line for p in problems[1:]] == [policy.lines["/spec/images/0/targets/0"]]


def test_a_canary_whose_route_is_not_found_is_set_aside(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    problems = [SKIPPED]
    targets = [image(t.resource, t.container) for i in policy.spec.images for t in i.targets]

    kept = set_aside_unbound(policy, targets, problems)

    assert len(kept.spec.images) == 2
    assert kept.spec.canaries == ()
    assert problems[1].line == policy.lines["/spec/canaries/0/route"]
    assert "canary podinfo: VirtualService/" in problems[1].why
