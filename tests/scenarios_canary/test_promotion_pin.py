"""A canary's promotion to a GA image policy with `digest: pin`, whole cycles over the real git server,
Prometheus and `docker-registry`: GA gets the canary's tag with its digest in the promotion itself, and a
promotion whose digest the registry cannot give holds, saying why, rather than writing an unpinned image."""

from __future__ import annotations

import httpx

from gitbot.config import load_policy
from tests.scenarios_canary.conftest import APPS_FILE, POLICY, World, WorldFactory, weights
from tests.scenarios_canary.test_progression import action, at, trailers

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def pin_ga(world: World) -> None:
    """GA's image policy of `world` with `digest: pin`, promoted to by the canary when it completes."""
    assert world.policy_path is not None
    text = world.policy_path.read_text(encoding="utf-8")
    text = text.replace('      filter: "0.1.*"\n', '      filter: "0.1.*"\n      digest: pin\n', 1)
    world.policy_path.write_text(text, encoding="utf-8")
    world.policy = load_policy(world.policy_path)


def served_digest(world: World, tag: str) -> str:
    with httpx.Client(base_url=world.registry.url, timeout=10, trust_env=False) as client:
        answer = client.head(f"/v2/{world.image_repo}/manifests/{tag}", headers={"Accept": MANIFEST})
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"]


def ga_line(world: World) -> str:
    apps = world.server.read_file(world.repo, APPS_FILE)
    return next(line.strip() for line in apps.split("name: podinfo-canary")[0].splitlines() if "image:" in line)


def complete(world: World) -> None:
    for moment in (1, 14, 27):
        world.cycle(moment)
    assert weights(world.routes_text()) == at(100)


def test_a_promotion_to_a_pinned_ga_writes_the_canary_tag_with_its_digest(make_world: WorldFactory) -> None:
    world = make_world("healthy", on_complete="promote\n      promoteTo: podinfo-ga")
    pin_ga(world)
    complete(world)
    image = f"{world.registry.host}/{world.image_repo}"
    assert ga_line(world) == f"image: {image}:0.1.1@{served_digest(world, '0.1.1')}"

    promoted = world.cycle(40)

    assert [d.subject for d in promoted.deliveries] == [f"gitbot({POLICY}): promote podinfo canary 0.2.1 to podinfo-ga"]
    digest = served_digest(world, "0.2.1")
    assert ga_line(world) == f"image: {image}:0.2.1@{digest}"
    message = world.server.message(world.repo)
    assert f"podinfo-ga is pinned to 0.2.1@{digest}" in message
    assert ("Gitbot-To", "0.2.1") in trailers(message)
    assert weights(world.routes_text()) == at(0)

    # Pinned in the promotion itself: the next cycle has nothing to pin again.
    head = world.log()[0].sha
    assert world.cycle(41).deliveries == ()
    assert world.log()[0].sha == head


def test_a_promotion_whose_digest_the_registry_cannot_give_holds_and_says_why(make_world: WorldFactory) -> None:
    world = make_world("healthy", on_complete="promote\n      promoteTo: podinfo-ga")
    pin_ga(world)
    complete(world)
    before = world.server.read_file(world.repo, APPS_FILE)
    # Someone deletes the canary's tag from the registry while it runs at 100 %.
    digest = served_digest(world, "0.2.1")
    with httpx.Client(base_url=world.registry.url, timeout=10, trust_env=False) as client:
        client.delete(f"/v2/{world.image_repo}/manifests/{digest}").raise_for_status()
    world.push_tags()

    held = world.cycle(40)

    assert action(held) == "promote" and held.deliveries == ()
    (outcome,) = held.canaries
    assert outcome.held is not None
    assert outcome.held.startswith(
        "promotion of 0.2.1 to podinfo-ga held: podinfo-ga pins digests and the digest of 0.2.1 cannot be had "
        f"(registry {world.registry.host}: {world.image_repo}:0.2.1 not found (404)"
    )
    assert world.server.read_file(world.repo, APPS_FILE) == before
    assert weights(world.routes_text()) == at(100)
