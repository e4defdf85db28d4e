"""A failing canary is rolled back in git by reverting the bot's steps, its tag quarantined; it waits at 0
until a newer tag arrives and then starts again from the first step."""

from __future__ import annotations

from tests.scenarios_canary.conftest import CANARY_TAG, POLICY, ROUTES_FILE, WorldFactory, weights
from tests.scenarios_canary.test_progression import action, at, trailers


def test_slow_canary_is_rolled_back_by_revert_and_restarts_on_a_newer_tag(make_world: WorldFactory) -> None:
    world = make_world("slow")
    world.cycle(1)
    step10 = world.log()[0].sha
    world.cycle(14)
    step60 = world.log()[0].sha
    assert weights(world.routes_text()) == at(60)

    # From minute 17 the canary answers 2.5x slower than GA; the window ending at 24 holds only slow answers.
    with world.git_trace() as trace:
        failed = world.cycle(24)
    assert action(failed) == "rollback"
    # Delivered by `git revert` of both steps, newest first (not by writing the files).
    commands = trace.read_text(encoding="utf-8")
    assert f"revert --no-commit --no-edit {step60} {step10}" in commands and "revert --abort" not in commands
    (delivery,) = failed.deliveries
    # p99 of GA interpolates to 175 ms in Istio's (100, 250] bucket, the canary's to 375 ms in (250, 500].
    assert delivery.subject == f"gitbot({POLICY}): roll back podinfo canary (p99 2.14x GA)"
    assert weights(world.routes_text()) == at(0)
    message = world.server.message(world.repo)
    assert f"This reverts commit {step60}.\nThis reverts commit {step10}.\n" in message
    assert ("Gitbot-Quarantine", f"podinfo-canary={CANARY_TAG}") in trailers(message)
    assert ("Gitbot-Action", "rollback") in trailers(message)
    assert "| latency-p99 |" in message and "**Verdict: fail**" in message
    # A real `git revert`: the tree is exactly the tree before the first step.
    assert world.server.git(world.repo, "rev-parse", "main^{tree}") == world.server.git(
        world.repo, "rev-parse", f"{step10}^^{{tree}}"
    )
    rollback = world.log()[0].sha

    # Rolled back: the canary stays at 0 and the quarantined tag is not put back (0.2.0 is older anyway).
    waiting = world.cycle(30)
    assert action(waiting) == "hold" and waiting.deliveries == ()
    assert waiting.canaries[0].decision is not None
    assert "waiting for a newer canary tag" in waiting.canaries[0].decision.reason
    assert world.log()[0].sha == rollback

    world.push_tags("0.2.2")
    update = world.cycle(31)
    assert [d.subject for d in update.deliveries] == [f"gitbot({POLICY}): podinfo-canary 0.2.1 -> 0.2.2"]
    assert weights(world.routes_text()) == at(0)
    assert f"{world.image_repo}:0.2.2" in world.server.read_file(world.repo, "clusters/production/podinfo.yaml")

    restart = world.cycle(32)
    assert [d.subject for d in restart.deliveries] == [f"gitbot({POLICY}): podinfo canary 0% -> 10%"]
    assert weights(world.routes_text()) == at(10)
    assert restart.canaries[0].decision is not None
    assert "newer canary tag after rollback" in restart.canaries[0].decision.reason
    # seed, 10 %, 60 %, rollback, image update, 10 %: every version a valid VirtualService.
    assert world.validate_every_version() == 6


def test_5xx_canary_is_rolled_back(make_world: WorldFactory) -> None:
    world = make_world("errors")
    world.cycle(1)
    step10 = world.log()[0].sha
    assert weights(world.routes_text()) == at(10)
    # A person adds a host in the same file, away from the weights: the revert merges around it.
    hosts = "hosts: [podinfo.example.test, podinfo.internal.test]"
    edited = world.routes_text().replace("hosts: [podinfo.example.test]", hosts)
    person = world.server.commit_as_other(world.repo, {ROUTES_FILE: edited}, "Serve podinfo internally too")

    with world.git_trace() as trace:
        failed = world.cycle(8)
    commands = trace.read_text(encoding="utf-8")
    assert f"revert --no-commit --no-edit {step10}" in commands and "revert --abort" not in commands
    assert world.server.git(world.repo, "log", "-1", "--format=%P", "main").split() == [person]
    assert hosts in world.routes_text()
    (delivery,) = failed.deliveries
    # Eight percent of the canary's answers are 503: 92 % succeed, GA's 100 %.
    assert delivery.subject == f"gitbot({POLICY}): roll back podinfo canary (success-rate 92 < 99; 8pp below GA)"
    message = world.server.message(world.repo)
    assert f"This reverts commit {step10}." in message
    assert ("Gitbot-Quarantine", f"podinfo-canary={CANARY_TAG}") in trailers(message)
    assert weights(world.routes_text()) == at(0)

    again = world.cycle(12)
    assert action(again) == "hold" and again.deliveries == ()
    assert world.validate_every_version() == 4


def test_a_gateway_api_route_steps_and_rolls_back_the_same_way(make_world: WorldFactory) -> None:
    world = make_world("errors", gateway_api=True)
    assert weights(world.routes_text()) == at(0)
    world.cycle(1)
    step10 = world.log()[0].sha
    assert weights(world.routes_text()) == at(10)

    failed = world.cycle(8)
    (delivery,) = failed.deliveries
    assert delivery.subject == f"gitbot({POLICY}): roll back podinfo canary (success-rate 92 < 99; 8pp below GA)"
    assert f"This reverts commit {step10}." in world.server.message(world.repo)
    assert weights(world.routes_text()) == at(0)
    assert world.validate_every_version() == 3


def test_a_canary_failing_at_100_percent_is_rolled_back_on_its_own_figures(make_world: WorldFactory) -> None:
    world = make_world("late-errors")
    steps = []
    for moment in (1, 14, 27):
        world.cycle(moment)
        steps.append(world.log()[0].sha)
    assert weights(world.routes_text()) == at(100)

    # GA has no traffic at 100 %: the canary is judged on its own bounds and on GA's figures before the step.
    failed = world.cycle(36)
    (delivery,) = failed.deliveries
    assert (
        delivery.subject
        == f"gitbot({POLICY}): roll back podinfo canary (success-rate 92 < 99; 8pp below GA before 100%)"
    )
    message = world.server.message(world.repo)
    assert "".join(f"This reverts commit {sha}.\n" for sha in reversed(steps)) in message
    assert ("Gitbot-From", "100") in trailers(message) and ("Gitbot-To", "0") in trailers(message)
    assert weights(world.routes_text()) == at(0)


def test_a_rollback_ends_at_0_when_a_person_set_the_weight_before_the_bots_steps(make_world: WorldFactory) -> None:
    # A person started the canary at 10 % by hand; the bot's only step is 10 % -> 60 %.
    world = make_world("slow", canary_weight=10)
    seed = world.log()[0].sha
    assert [d.subject for d in world.cycle(14).deliveries] == [f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    step60 = world.log()[0].sha

    with world.git_trace() as trace:
        failed = world.cycle(24)
    assert action(failed) == "rollback"
    commands = trace.read_text(encoding="utf-8")
    assert f"revert --no-commit --no-edit {step60}" in commands and "revert --abort" not in commands
    # Reverting the step alone would leave the failing canary at the person's 10 %: one commit ends it at 0.
    assert weights(world.routes_text()) == at(0)
    assert world.server.git(world.repo, "log", "-1", "--format=%P", "main").split() == [step60]
    assert world.routes_text() == world.routes_text(seed).replace("weight: 90", "weight: 100").replace(
        "weight: 10\n", "weight: 0\n"
    )
    message = world.server.message(world.repo)
    assert message.splitlines()[0] == f"gitbot({POLICY}): roll back podinfo canary (p99 2.14x GA)"
    assert (
        f"This reverts commit {step60}.\n\n"
        "Reverting these steps restores the canary weight from before them, 10%; "
        "this commit then sets it from 10% to 0% (GA 100%).\n\n"
    ) in message
    assert ("Gitbot-From", "60") in trailers(message) and ("Gitbot-To", "0") in trailers(message)
    assert ("Gitbot-Quarantine", f"podinfo-canary={CANARY_TAG}") in trailers(message)

    # At 0 and rolled back: the canary waits for a newer tag instead of staying on the person's 10 %.
    after = world.cycle(30)
    assert action(after) == "hold" and after.deliveries == ()
    assert after.canaries[0].decision is not None
    assert "waiting for a newer canary tag" in after.canaries[0].decision.reason
    assert weights(world.routes_text()) == at(0)
    assert world.validate_every_version() == 3
