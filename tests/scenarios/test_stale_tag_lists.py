"""A running tag deleted from the real `docker-registry` while older tags remain: the registry's tag list no
longer has it, and gitbot must not read that as a reason to move the image back. Nothing is committed, and
`gitbot plan` and `gitbot once` say why in a problem line at the image's place in the policy."""

from __future__ import annotations

import httpx
import pytest

from gitbot.adapters.registry import OciRegistry
from gitbot.cycle import run_cycle
from gitbot.demo.localservers import push_image
from tests.scenarios.conftest import POLICY, WORKLOADS, World, WorldFactory, close_registries, workloads_text
from tests.scenarios.test_cli import gitbot, policy_args
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.real

REPO = "stale/podinfo"


def delete_tag(world: World, tag: str) -> None:
    """Push `tag` as an image of its own, then delete that image: the registry lists the tag no more."""
    with httpx.Client(base_url=world.registry.url, timeout=10, trust_env=False) as client:
        digest = push_image(client, REPO, [tag], content=f"only {tag}\n")
        deleted = client.delete(f"/v2/{REPO}/manifests/{digest}")
    assert deleted.status_code == 202, deleted.text
    with OciRegistry(cache_ttl=0) as registry:
        listed = registry.list_tags(f"{world.registry.host}/{REPO}")
    assert tag not in listed and "0.1.2" in listed


def test_a_deleted_running_tag_holds_the_image_and_is_reported(
    make_world: WorldFactory, registry: RunningRegistry
) -> None:
    # GA runs 0.1.3, which the registry had; the canary runs the newest 0.2 tag, so it has nothing to do.
    text = workloads_text(registry.host, REPO, ga="0.1.3", canary="0.2.1")
    world = make_world(image_repo=REPO, extra_files={WORKLOADS: text})
    delete_tag(world, "0.1.3")
    seed = world.git.head(world.repo)
    assert seed is not None

    deps = world.deps()
    try:
        result = run_cycle(world.policy(), deps, deliver=True)
    finally:
        close_registries(deps)

    assert result.plans == () and result.deliveries == ()
    assert world.git.head(world.repo) == seed
    assert world.workloads() == text
    expected = (
        f"spec.images[0]: image podinfo-ga holds at 0.1.3: the tag list of {world.image} does not have it and "
        "the newest tag it allows, 0.1.2, is older; not moving back"
    )
    assert [problem.why.split(" (")[0] for problem in result.problems] == [expected]

    for command in ("plan", "once"):
        done = gitbot(world, command, *policy_args(world))
        assert done.returncode == 0, done.stderr
        assert f"{POLICY}: nothing to change at {seed[:12]}" in done.stdout
        line = next(line for line in done.stdout.splitlines() if line.startswith("problem: "))
        assert line.startswith(f"problem: {world.policy_path}:")
        assert expected in line
    assert world.git.head(world.repo) == seed
    assert world.git.branches(world.repo) == ["main"]
