"""Binding image policies to the manifests of a real checkout: mistakes are ConfigErrors naming the policy
file and line; a field bound by resource and by its own Flux marker is one binding."""

from __future__ import annotations

import pytest

from gitbot.cycle import run_cycle
from gitbot.errors import ConfigError
from tests.scenarios.conftest import POLICY, WORKLOADS, World, image_yaml

pytestmark = pytest.mark.real

SIDECAR = """\
        - name: sidecar
          image: {image}:0.1.1
"""


def line_of(world: World, needle: str) -> int:
    lines = world.policy_path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if needle in line)


def test_target_that_matches_nothing_names_the_policy_file_and_line(world: World) -> None:
    world.write_policy(
        images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-gone", "podinfod"),
    )

    with pytest.raises(ConfigError) as caught:
        run_cycle(world.policy(), world.deps(), deliver=False)

    line = caught.value.one_line()
    assert f"{world.policy_path}:{line_of(world, 'Deployment/test/podinfo-gone')}" in line
    assert "spec.images[0].targets[0]" in line and "Deployment/test/podinfo-gone" in line and "\n" not in line


def test_container_ambiguity_names_the_policy_file_and_line(world: World) -> None:
    text = world.expected_workloads()
    text = text.replace(
        "            - containerPort: 9898\n",
        "            - containerPort: 9898\n" + SIDECAR.format(image=world.image),
        1,
    )
    world.git.commit_as_other(world.repo, {WORKLOADS: text}, "Add a sidecar to podinfo-ga")
    world.write_policy(images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", None))
    head = world.git.head(world.repo)

    with pytest.raises(ConfigError) as caught:
        run_cycle(world.policy(), world.deps(), deliver=True)

    line = caught.value.one_line()
    assert f"{world.policy_path}:{line_of(world, 'Deployment/test/podinfo-ga')}" in line
    assert "several containers (podinfod, sidecar)" in line and "name one with container" in line
    assert world.git.head(world.repo) == head


def test_field_bound_by_resource_and_its_own_marker_is_updated_once(world: World) -> None:
    marked = world.expected_workloads().replace("   # GA\n", '  # {"$imagepolicy": "test:podinfo-ga"}\n', 1)
    assert marked != world.expected_workloads()
    world.git.commit_as_other(world.repo, {WORKLOADS: marked}, "Mark podinfo-ga for Flux")

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.subject for d in result.deliveries] == [
        f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2",
        f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1",
    ]
    assert world.workloads() == marked.replace(":0.1.0", ":0.1.2").replace(":0.2.0", ":0.2.1")


def test_field_marked_for_another_image_policy_is_an_error(world: World) -> None:
    marked = world.expected_workloads().replace("   # GA\n", '  # {"$imagepolicy": "test:podinfo-canary"}\n', 1)
    world.git.commit_as_other(world.repo, {WORKLOADS: marked}, "Mark podinfo-ga wrongly")

    with pytest.raises(ConfigError) as caught:
        run_cycle(world.policy(), world.deps(), deliver=False)

    line = caught.value.one_line()
    assert f"{world.policy_path}:{line_of(world, '- name: podinfo-canary')}" in line
    field_line = next(n for n, text in enumerate(marked.splitlines(), 1) if "test:podinfo-canary" in text)
    assert f"binds {WORKLOADS}:{field_line}, which image podinfo-ga binds too" in line


def test_image_policy_bound_only_by_flux_markers(world: World) -> None:
    marked = (
        world.expected_workloads()
        .replace("   # GA\n", '  # {"$imagepolicy": "test:podinfo-ga"}\n', 1)
        .replace('0.2.0"\n', '0.2.0" # {"$imagepolicy": "test:podinfo-canary"}\n', 1)
    )
    world.git.commit_as_other(world.repo, {WORKLOADS: marked}, "Mark both images for Flux")
    ref = world.image
    world.write_policy(
        images=(
            f'    - {{name: podinfo-ga, repository: {ref}, filter: "0.1.*"}}\n'
            f'    - {{name: podinfo-canary, repository: {ref}, filter: "0.2.*"}}\n'
        )
    )

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert len(result.deliveries) == 2
    assert world.workloads() == marked.replace(":0.1.0", ":0.1.2").replace(":0.2.0", ":0.2.1")
