"""Whole cycles with an image policy's `minAge`, `digest: pin` and `verify.cosign`, over the loopback git
server and Debian's real `docker-registry`: images pushed with chosen `created` times, a tag pushed again
with another manifest, and tags signed in cosign's format (with `cryptography`) or left unsigned."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gitbot.adapters.registry import OciRegistry
from gitbot.cycle import run_cycle
from tests.scenarios.conftest import POLICY, World, WorldFactory, image_yaml
from tests.support.images import new_key, public_pem, push_image, sign

pytestmark = pytest.mark.real


@pytest.fixture
def gated(make_world: WorldFactory, request: pytest.FixtureRequest) -> World:
    slug = request.node.name.replace("_", "-").lower()[:40].strip("-")
    return make_world(image_repo=f"gates/{slug}", tags=("0.1.0", "0.2.0"))


@pytest.fixture
def pusher(gated: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gated.registry.url, timeout=10, trust_env=False) as client:
        yield client


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def gate(world: World, fields: str) -> None:
    """The GA image policy of `world` with `fields` (indented policy lines) added after its filter."""
    ga = image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod")
    ga = ga.replace('filter: "0.1.*"\n', 'filter: "0.1.*"\n' + fields)
    world.write_policy(images=ga)


def ga_image(world: World) -> str:
    line = next(line for line in world.workloads().splitlines() if "# GA" in line)
    return line.split("image: ", 1)[1].split("   # GA")[0]


def sent(registry: object) -> int:
    assert isinstance(registry, OciRegistry)
    return sum(registry.requests.values())


def test_min_age_proposes_the_newest_tag_old_enough_and_asks_only_about_the_tags_it_considers(
    gated: World, pusher: httpx.Client
) -> None:
    repo = gated.image_repo
    push_image(pusher, repo, "0.1.1", created=ago(hours=3))
    push_image(pusher, repo, "0.1.2", created=ago(minutes=10))
    push_image(pusher, repo, "0.1.3", created=None)
    gate(gated, "      minAge: 1h\n")
    deps = gated.deps()

    result = run_cycle(gated.policy(), deps, deliver=True)
    assert [d.outcome for d in result.deliveries] == ["committed"]
    assert ga_image(gated) == f"{gated.image}:0.1.1"
    head = gated.git.log(gated.repo)[0]
    assert head.subject == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.1"
    message = gated.git.message(gated.repo, head.sha)
    assert "0.1.3: its image has no creation time, which minAge needs" in message
    assert "0.1.2: created 10m" in message
    # The tag list, then per tag considered (0.1.3, 0.1.2, 0.1.1) a HEAD, its manifest and its config.
    assert sent(deps.registry) == 1 + 3 * 3

    before = sent(deps.registry)
    again = run_cycle(gated.policy(), deps, deliver=True)
    assert again.deliveries == () or all(d.outcome != "committed" for d in again.deliveries)
    # Creation times are kept by digest: a HEAD per tag considered (down to the running 0.1.1), at most a list.
    assert sent(deps.registry) - before <= 1 + 3


def test_digest_pin_writes_the_digest_and_pins_again_when_the_tag_moves(gated: World, pusher: httpx.Client) -> None:
    repo = gated.image_repo
    first = push_image(pusher, repo, "0.1.1", created=ago(days=1), content="first build")
    gate(gated, "      digest: pin\n")

    run_cycle(gated.policy(), gated.deps(), deliver=True)
    assert ga_image(gated) == f"{gated.image}:0.1.1@{first}"
    assert gated.git.log(gated.repo)[0].subject == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.1"

    second = push_image(pusher, repo, "0.1.1", created=ago(hours=1), content="rebuilt")
    assert second != first
    result = run_cycle(gated.policy(), gated.deps(), deliver=True)
    assert [d.outcome for d in result.deliveries] == ["committed"]
    assert ga_image(gated) == f"{gated.image}:0.1.1@{second}"
    head = gated.git.log(gated.repo)[0]
    assert head.subject == f"gitbot({POLICY}): podinfo-ga 0.1.1@{first} -> 0.1.1@{second}"
    message = gated.git.message(gated.repo, head.sha)
    assert f"0.1.1 now serves {second} (was {first})" in message

    head_before = gated.git.head(gated.repo)
    run_cycle(gated.policy(), gated.deps(), deliver=True)
    assert gated.git.head(gated.repo) == head_before


def test_only_a_tag_signed_under_the_key_is_proposed(gated: World, pusher: httpx.Client, tmp_path: Path) -> None:
    repo = gated.image_repo
    key = new_key()
    signed = push_image(pusher, repo, "0.1.1", created=None, content="signed")
    push_image(pusher, repo, "0.1.2", created=None, content="unsigned")
    other = push_image(pusher, repo, "0.1.3", created=None, content="someone else's")
    sign(pusher, repo, signed, key)
    sign(pusher, repo, other, new_key())
    (gated.policy_path.parent).mkdir(parents=True, exist_ok=True)
    (gated.policy_path.parent / "cosign.pub").write_bytes(public_pem(key))
    gate(gated, "      digest: pin\n      verify: {cosign: {publicKeyFile: cosign.pub}}\n")

    run_cycle(gated.policy(), gated.deps(), deliver=True)
    assert ga_image(gated) == f"{gated.image}:0.1.1@{signed}"
    message = gated.git.message(gated.repo, gated.git.log(gated.repo)[0].sha)
    assert "0.1.2: not signed (no cosign signature)" in message
    assert "0.1.3: no valid signature under the key" in message
