"""A healthy canary walks 10 -> 60 -> 100 in git, stepping only after the dwell, counted from when the
traffic share visibly matches the committed weight; the unrelated route is never touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jsonschema.exceptions import ValidationError

from gitbot.cycle import CycleResult
from tests.scenarios_canary.conftest import APPS_FILE, POLICY, WorldFactory, minute, routes, weights

LEGACY = [("v1", 70), ("v2", 30)]


def at(canary: int) -> dict[str, list[tuple[str, int]]]:
    """The VirtualService's routes with the canary at `canary` percent on both of its routes."""
    split = [("ga", 100 - canary), ("canary", canary)]
    return {"legacy": LEGACY, "api": split, "web": split}


def action(result: CycleResult) -> str:
    (outcome,) = result.canaries
    assert outcome.decision is not None
    return outcome.decision.action


def trailers(message: str) -> list[tuple[str, str]]:
    return [
        (key, value.strip())
        for line in message.splitlines()
        if line.startswith("Gitbot-")
        for key, _, value in [line.partition(":")]
    ]


def test_healthy_canary_steps_10_60_100_after_each_dwell(make_world: WorldFactory) -> None:
    world = make_world("healthy")
    seed = world.log()[0].sha
    assert weights(world.routes_text()) == at(0)

    first = world.cycle(1)
    assert [d.subject for d in first.deliveries] == [f"gitbot({POLICY}): podinfo canary 0% -> 10%"]
    assert weights(world.routes_text()) == at(10)
    step10 = world.log()[0]
    assert step10.author_name == "gitbot"
    assert ("Gitbot-Action", "canary-step") in trailers(world.server.message(world.repo))

    # The route changed at minute 2 in the data: a minute later the 5-minute share is still far from 10 %.
    early = world.cycle(3)
    assert action(early) == "wait-for-traffic" and early.deliveries == ()
    # From minute 3 the share matched, so the 10-minute dwell ends at 13 (not at 11, counted from the commit).
    # A restarted bot knows this from git history and Prometheus alone.
    world.restart()
    dwell = world.cycle(12)
    assert action(dwell) == "hold" and dwell.deliveries == ()
    assert dwell.canaries[0].decision is not None
    assert dwell.canaries[0].decision.dwell_remaining == timedelta(minutes=1)
    assert world.log()[0].sha == step10.sha

    second = world.cycle(14)
    assert [d.subject for d in second.deliveries] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    assert weights(world.routes_text()) == at(60)
    message = world.server.message(world.repo)
    assert trailers(message)[:5] == [
        ("Gitbot-Policy", POLICY),
        ("Gitbot-Action", "canary-step"),
        ("Gitbot-Target", "podinfo"),
        ("Gitbot-From", "10"),
        ("Gitbot-To", "60"),
    ]
    assert "| Check | Canary | GA | Threshold | Verdict | Window |" in message
    assert "| success-rate | 100.00% | 100.00% |" in message
    assert "**Verdict: pass**" in message
    assert "5m to 2026-01-05 12:14:00Z" in message
    assert "Observed canary share of requests over the window: 10.0%." in message

    assert action(world.cycle(16)) == "wait-for-traffic"
    # Stepped at 14, share matched from 16: still 1 minute to dwell at 25.
    late = world.cycle(25)
    assert action(late) == "hold" and late.deliveries == ()

    third = world.cycle(27)
    assert [d.subject for d in third.deliveries] == [f"gitbot({POLICY}): podinfo canary 60% -> 100%"]
    assert weights(world.routes_text()) == at(100)

    done = world.cycle(40)
    assert action(done) == "complete" and done.deliveries == ()

    log = world.log()
    assert [c.subject for c in log[:3]] == [
        f"gitbot({POLICY}): podinfo canary 60% -> 100%",
        f"gitbot({POLICY}): podinfo canary 10% -> 60%",
        f"gitbot({POLICY}): podinfo canary 0% -> 10%",
    ]
    assert log[3].sha == seed
    assert world.validate_every_version() == 4
    # The bot dates its commits by its clock, which is how a restarted bot knows the time of the last step.
    dates = world.server.git(world.repo, "log", "-3", "--format=%ct").split()
    assert [int(d) for d in dates] == [int(minute(m).timestamp()) for m in (27, 14, 1)]
    # Only the canary's weights changed: the diff from the seed touches four weight lines of one file.
    diff = world.server.git(world.repo, "diff", "--numstat", seed, "main")
    assert diff.split() == ["4", "4", "clusters/production/routes.yaml"]


def test_with_on_new_image_continue_a_new_canary_image_restarts_the_dwell(make_world: WorldFactory) -> None:
    world = make_world("healthy", on_complete="hold\n      onNewImage: continue")
    world.cycle(1)
    world.push_tags("0.2.2")
    # The image update goes first; the canary decides again only once it is in git.
    update = world.cycle(5)
    assert [d.subject for d in update.deliveries] == [f"gitbot({POLICY}): podinfo-canary 0.2.1 -> 0.2.2"]
    assert update.canaries[0].decision is None
    assert weights(world.routes_text()) == at(10)

    # Without the new image the canary steps at 14 (dwell from minute 3); with it the dwell runs from 5.
    held = world.cycle(14)
    assert action(held) == "hold" and held.deliveries == ()
    assert held.canaries[0].decision is not None
    assert held.canaries[0].decision.reason == "new canary image, dwell restarted: 1m left"

    stepped = world.cycle(15)
    assert [d.subject for d in stepped.deliveries] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    assert weights(world.routes_text()) == at(60)
    assert world.validate_every_version() == 4


def test_the_schema_check_rejects_a_quoted_weight() -> None:
    # The check the scenarios lean on bites: a weight written as a string is not a valid VirtualService.
    broken = routes().replace("weight: 100  # GA", 'weight: "100"')
    with pytest.raises(ValidationError, match="'100' is not of type 'integer'"):
        weights(broken)


def test_a_weight_set_by_hand_dwells_from_when_the_traffic_shows_it(make_world: WorldFactory) -> None:
    # Someone set 10 % in git without the bot (no step in history); the traffic follows from minute 2.
    world = make_world("healthy", canary_weight=10)
    assert weights(world.routes_text()) == at(10)
    early = world.cycle(5)
    assert action(early) == "hold" and early.deliveries == ()
    assert early.canaries[0].decision is not None
    assert early.canaries[0].decision.reason == "dwell at 10%: 8m left"
    stepped = world.cycle(14)
    assert [d.subject for d in stepped.deliveries] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]


def test_a_complete_canary_is_promoted_and_ga_keeps_the_promoted_tag(make_world: WorldFactory) -> None:
    world = make_world("healthy", on_complete="promote\n      promoteTo: podinfo-ga")
    for moment in (1, 14, 27):
        world.cycle(moment)
    assert weights(world.routes_text()) == at(100)

    promoted = world.cycle(40)
    assert [d.subject for d in promoted.deliveries] == [f"gitbot({POLICY}): promote podinfo canary 0.2.1 to podinfo-ga"]
    assert weights(world.routes_text()) == at(0)
    apps = world.server.read_file(world.repo, APPS_FILE)
    assert apps.count(f"{world.image_repo}:0.2.1") == 2
    message = world.server.message(world.repo)
    assert ("Gitbot-Action", "promote") in trailers(message)
    assert ("Gitbot-To", "0.2.1") in trailers(message)

    # GA's own filter (0.1.*) does not take GA back from the promoted tag, and the canary has nothing to do.
    after = world.cycle(41)
    assert after.deliveries == ()
    assert after.canaries[0].decision is not None
    assert after.canaries[0].decision.reason == "nothing to roll out: the canary runs the GA version"
    assert world.server.read_file(world.repo, APPS_FILE) == apps

    # The next canary tag starts the next rollout.
    world.push_tags("0.2.2")
    assert [d.subject for d in world.cycle(42).deliveries] == [f"gitbot({POLICY}): podinfo-canary 0.2.1 -> 0.2.2"]
    assert [d.subject for d in world.cycle(43).deliveries] == [f"gitbot({POLICY}): podinfo canary 0% -> 10%"]
    # seed, 10 %, 60 %, 100 %, promotion, canary image, 10 %.
    assert world.validate_every_version() == 7
