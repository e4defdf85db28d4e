"""`gitbot status` shows per image the tag a cycle would pick past its promotion gate and its `minAge`,
`verify` and `digest: pin`, and what holds each newer tag back, over the real git server and Debian's
`docker-registry` (images pushed with chosen `created` times, signed in cosign's format or not)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gitbot.commands.compose import build_deps
from gitbot.cycle import run_cycle
from gitbot.demo.builtin import ManualClock
from gitbot.manual import ImageStatus, status
from tests.scenarios.conftest import World, WorldFactory
from tests.scenarios.test_cli import gitbot
from tests.scenarios.test_image_gates import gate
from tests.scenarios.test_promotion import Environments, policy_yaml
from tests.support.github_fake import GitHubFake
from tests.support.images import new_key, public_pem, push_image, sign

pytestmark = pytest.mark.real


@pytest.fixture
def bare(make_world: WorldFactory, github_fake: GitHubFake, request: pytest.FixtureRequest) -> World:
    slug = request.node.name.replace("_", "-").lower()[:40].strip("-")
    return make_world(image_repo=f"status/{slug}", github=github_fake, tags=("0.1.0",))


@pytest.fixture
def pusher(bare: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bare.registry.url, timeout=10, trust_env=False) as client:
        yield client


def ago(at: datetime | None = None, **delta: float) -> str:
    return ((at or datetime.now(UTC)) - timedelta(**delta)).isoformat()


def gitbot_status(world: World, policies: Path) -> list[str]:
    done = gitbot(world, "status", "--policy", "production", "--policies", str(policies))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_status_shows_the_tag_minage_and_verify_let_through_with_its_pinned_digest(
    bare: World, pusher: httpx.Client
) -> None:
    repo = bare.image_repo
    key = new_key()
    chosen = push_image(pusher, repo, "0.1.1", created=ago(days=2), content="signed, old")
    sign(pusher, repo, chosen, key)
    young = push_image(pusher, repo, "0.1.2", created=ago(minutes=10), content="signed, young")
    sign(pusher, repo, young, key)
    push_image(pusher, repo, "0.1.3", created=ago(days=1), content="unsigned")
    other = push_image(pusher, repo, "0.1.4", created=ago(days=1), content="signed by someone else")
    sign(pusher, repo, other, new_key())
    bare.policy_path.parent.mkdir(parents=True, exist_ok=True)
    (bare.policy_path.parent / "cosign.pub").write_bytes(public_pem(key))
    gate(bare, "      minAge: 1h\n      digest: pin\n      verify: {cosign: {publicKeyFile: cosign.pub}}\n")

    lines = gitbot_status(bare, bare.policy_path.parent)

    ga = next(line for line in lines if line.startswith("  podinfo-ga: "))
    assert ga == f"  podinfo-ga: running 0.1.0; newest allowed 0.1.1@{chosen}"
    held = [line for line in lines if line.startswith("    held back ")]
    assert held[:2] == [
        "    held back 0.1.4: no valid signature under the key (1 signature(s) do not verify)",
        "    held back 0.1.3: not signed (no cosign signature)",
    ]
    assert re.fullmatch(r"    held back 0\.1\.2: created 1[01]m(\d+s)? ago, younger than minAge 1h", held[2]), held
    assert len(held) == 3

    # A cycle proposes the very tag status shows, pinned to the digest status shows.
    run_cycle(bare.policy(), bare.deps(), deliver=True)
    assert bare.github is not None
    (pull,) = bare.github.list_pulls()
    assert pull.title == "gitbot(production): podinfo-ga 0.1.0 -> 0.1.1"
    assert f"0.1.1@{chosen}" in (pull.body or "")


def test_status_applies_the_promotion_gate_then_the_release_age(bare: World, pusher: httpx.Client) -> None:
    repo = bare.image_repo
    fields = "      minAge: 3h\n      digest: pin\n"
    production = policy_yaml(bare, "production", "main", mode="pull-request", gate="{after: staging/podinfo-ga}")
    envs = Environments(
        bare,
        {
            "staging": policy_yaml(bare, "staging", "staging"),
            "production": production.replace('filter: "0.1.*"\n', 'filter: "0.1.*"\n' + fields),
        },
    )
    old = push_image(pusher, repo, "0.1.1", created=ago(days=1), content="old")
    assert [d.outcome for d in envs.cycle("staging").deliveries] == ["committed"]
    # Staging takes the newest tag (its policy asks nothing of the registry): 0.1.3, never 0.1.2.
    push_image(pusher, repo, "0.1.2", created=ago(days=1), content="never staged")
    push_image(pusher, repo, "0.1.3", created=ago(minutes=30), content="fresh")
    assert [d.outcome for d in envs.cycle("staging").deliveries] == ["committed"]
    _sha, landed = envs.landed("staging")

    report = production_status(envs, landed + timedelta(hours=2))

    assert report.newest == "0.1.1" and report.digest == old
    assert report.held[0][0] == "0.1.3"
    assert re.fullmatch(r"created 2h[23]\dm(\d+s)? ago, younger than minAge 3h", report.held[0][1]), report.held
    assert report.held[1:] == (("0.1.2", "not yet in staging"),)

    # Past its minAge the gate and the age both let 0.1.3 through.
    later = production_status(envs, landed + timedelta(hours=4))
    assert later.newest == "0.1.3" and later.held == ()
    assert later.digest is not None and later.digest.startswith("sha256:")


def production_status(envs: Environments, now: datetime) -> ImageStatus:
    policy = envs.policy("production")
    deps = replace(build_deps(policy, need_forge=True, env=envs.world.env, throttle=False), clock=ManualClock(now))
    (image,) = status(policy, deps).images
    return image
