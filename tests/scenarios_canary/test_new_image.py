"""`onNewImage: restart` (the default): a new canary tag that arrives while the canary has traffic comes in
the same change (commit or pull request) that moves the canary's weights back to 0%, and once that change is
applied the rollout starts again from the first step."""

from __future__ import annotations

from tests.scenarios_canary.conftest import APPS_FILE, POLICY, World, WorldFactory, weights
from tests.scenarios_canary.test_progression import action, at, trailers
from tests.scenarios_canary.test_pull_requests import BRANCH, delivered, merge, open_pulls
from tests.support.github_fake import GitHubFake

UPDATE = f"gitbot({POLICY}): podinfo-canary 0.2.1 -> 0.2.2"


def at_60(world: World) -> None:
    world.cycle(1)
    world.cycle(14)
    assert weights(world.routes_text()) == at(60)


def test_a_new_canary_tag_at_60_percent_comes_with_the_weights_at_0_and_starts_again(
    make_world: WorldFactory,
) -> None:
    world = make_world("healthy")
    at_60(world)
    step60 = world.log()[0].sha
    world.push_tags("0.2.2")

    update = world.cycle(17)
    assert [d.subject for d in update.deliveries] == [UPDATE]
    (commit,) = [c for c in world.log() if c.subject == UPDATE]
    # One commit: the new image and the canary's weights back to 0 %.
    assert weights(world.routes_text()) == at(0)
    assert f"{world.image_repo}:0.2.2" in world.server.read_file(world.repo, APPS_FILE)
    changed = world.server.git(world.repo, "diff", "--name-only", step60, commit.sha).split()
    assert changed == [APPS_FILE, "clusters/production/routes.yaml"]
    message = world.server.message(world.repo)
    assert ("Gitbot-Restart", "podinfo") in trailers(message)
    assert "sets its weights from 60% to 0% (GA 100%)" in message

    restarted = world.cycle(18)
    assert [d.subject for d in restarted.deliveries] == [f"gitbot({POLICY}): podinfo canary 0% -> 10%"]
    assert weights(world.routes_text()) == at(10)
    # The old image's steps are over: the new rollout dwells from its own first step.
    assert action(world.plan(19)) == "wait-for-traffic"
    assert world.validate_every_version() == 5


def test_with_on_new_image_continue_the_weights_stay(make_world: WorldFactory) -> None:
    world = make_world("healthy", on_complete="hold\n      onNewImage: continue")
    at_60(world)
    world.push_tags("0.2.2")
    assert [d.subject for d in world.cycle(17).deliveries] == [UPDATE]
    assert weights(world.routes_text()) == at(60)
    assert "Gitbot-Restart" not in world.server.message(world.repo)


def test_a_new_canary_tag_in_pull_request_mode_proposes_the_weights_at_0_in_the_same_pull_request(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("healthy", github=github_fake)
    world.cycle(1)
    (first,) = open_pulls(world)
    merge(world, first)
    assert weights(world.routes_text()) == at(10)
    world.push_tags("0.2.2")

    proposed = world.cycle(5)
    assert ("podinfo-canary", "opened") in delivered(proposed)
    (pull,) = [p for p in open_pulls(world) if p.head == f"gitbot/{POLICY}/podinfo-canary"]
    assert pull.title == UPDATE
    assert weights(world.routes_text(pull.head)) == at(0)
    assert "sets its weights from 10% to 0% (GA 100%)" in (pull.body or "")
    assert weights(world.routes_text()) == at(10), "nothing changes on the branch before the merge"

    merge(world, pull)
    assert weights(world.routes_text()) == at(0)
    restarted = world.cycle(6)
    assert ("podinfo", "opened") in delivered(restarted)
    (step,) = [p for p in open_pulls(world) if p.head == BRANCH]
    assert step.title == f"gitbot({POLICY}): podinfo canary 0% -> 10%"
