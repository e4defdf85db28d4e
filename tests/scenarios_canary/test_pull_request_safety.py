"""Pull-request mode never makes a failing canary wait: its rollback goes straight to the environment branch
(unless the policy asks `delivery.rollback: pull-request`) and the bot's open pull requests for the canary
say why; a step waits until the canary image it is meant for has landed; a rollback returns the canary
image to the tag that ran before the bad one, and `status` flags a target that runs a quarantined tag."""

from __future__ import annotations

import logging

import pytest

from gitbot.commands.runner import summarize
from gitbot.logs import FIELDS
from gitbot.manual import ImageStatus, promote, status
from gitbot.service import Service, ServiceMetrics
from tests.scenarios_canary.conftest import APPS_FILE, CANARY_TAG, POLICY, World, WorldFactory, weights
from tests.scenarios_canary.test_cli import gitbot, ok
from tests.scenarios_canary.test_progression import action, at, trailers
from tests.scenarios_canary.test_pull_requests import BRANCH, delivered, merge, open_pulls, rev, review_rollbacks
from tests.support.github_fake import GitHubFake
from tests.support.gitserver import GitServer


def running_quarantined(image: ImageStatus) -> tuple[str, ...]:
    """The quarantined tags an image's targets run, as `gitbot status` flags them."""
    return tuple(sorted({tag for _resource, tag in image.quarantined_targets}))


def canary_image(world: World, ref: str = "main") -> str:
    text = world.server.read_file(world.repo, APPS_FILE, ref)
    return text.split("name: podinfo-canary", 1)[1].split("image: ", 1)[1].split("\n", 1)[0]


def test_a_failing_canary_is_rolled_back_on_the_branch_at_once_and_its_step_pull_request_says_why(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("slow", github=github_fake)
    world.cycle(1)
    merge(world, open_pulls(world)[0])
    assert delivered(world.cycle(14)) == [("podinfo", "opened")]
    (step,) = open_pulls(world)
    assert step.title == f"gitbot({POLICY}): podinfo canary 10% -> 60%"
    by_hand = promote(world.policy, world.deps, "podinfo", to=100)
    assert by_hand.outcome == "opened"
    assert weights(world.routes_text()) == at(10)

    # From minute 17 the canary answers 2.5x slower: rolled back on the branch without waiting for a review.
    failed = world.cycle(24)
    assert action(failed) == "rollback"
    (rolled,) = [d for d in failed.deliveries if d.outcome == "committed"]
    assert rolled.name == "podinfo" and rolled.ref == rev(world, "main")
    assert rolled.subject == f"gitbot({POLICY}): roll back podinfo canary (p99 2.14x GA)"
    assert weights(world.routes_text()) == at(0)
    message = world.server.message(world.repo)
    assert ("Gitbot-Action", "rollback") in trailers(message)
    assert ("Gitbot-Quarantine", f"podinfo-canary={CANARY_TAG}") in trailers(message)
    # The superseded step is closed, with a comment that says what happened and why.
    assert ("podinfo", "closed") in delivered(failed)
    assert [p.head for p in open_pulls(world)] == [f"gitbot/{POLICY}/promote-podinfo"]
    (comment,) = github_fake.comments_on(step.number)
    assert f"rolled back canary podinfo on main in {rolled.ref[:7]}" in comment
    assert "p99 2.14x GA" in comment and "without waiting for a review" in comment
    # The step by hand stays open for a person, and hears the same.
    (promote_pull,) = open_pulls(world)
    (note,) = github_fake.comments_on(promote_pull.number)
    assert f"rolled back canary podinfo on main in {rolled.ref[:7]}" in note

    # Rolled back: nothing more to deliver, nothing proposed again.
    after = world.cycle(30)
    assert action(after) == "hold" and after.deliveries == ()
    assert world.validate_every_version() == 3


def test_a_policy_may_ask_for_rollbacks_to_wait_for_a_review(make_world: WorldFactory, github_fake: GitHubFake) -> None:
    world = make_world("errors", github=github_fake)
    review_rollbacks(world)
    world.cycle(1)
    merge(world, open_pulls(world)[0])
    head = rev(world, "main")

    failed = world.cycle(8)
    assert action(failed) == "rollback"
    assert delivered(failed) == [("podinfo", "opened")]
    (pull,) = open_pulls(world)
    assert pull.head == BRANCH and pull.title.startswith(f"gitbot({POLICY}): roll back podinfo canary")
    assert rev(world, "main") == head and weights(world.routes_text()) == at(10)
    assert weights(world.routes_text(BRANCH)) == at(0)


def test_a_step_waits_until_the_canary_image_it_is_meant_for_has_landed(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("healthy", github=github_fake)
    world.push_tags("0.2.2")

    first = world.cycle(1)
    # Only the new canary image is proposed: a step merged before it would send traffic to the old image.
    assert delivered(first) == [("podinfo-canary", "opened")]
    (image_pull,) = open_pulls(world)
    assert image_pull.title == f"gitbot({POLICY}): podinfo-canary {CANARY_TAG} -> 0.2.2"
    (outcome,) = first.canaries
    assert outcome.held == (
        f"canary image podinfo-canary {CANARY_TAG} -> 0.2.2 is proposed in a pull request; "
        "the next step waits until it lands"
    )
    assert delivered(world.cycle(1.5)) == [("podinfo-canary", "unchanged")]

    merge(world, image_pull)
    started = world.cycle(2)
    assert delivered(started) == [("podinfo", "opened")]
    (step,) = open_pulls(world)
    assert step.title == f"gitbot({POLICY}): podinfo canary 0% -> 10%"
    assert canary_image(world, BRANCH).endswith(f"{world.image_repo}:0.2.2")


def test_a_rollback_returns_the_canary_image_to_the_tag_that_ran_before(make_world: WorldFactory) -> None:
    world = make_world("errors")
    world.push_tags("0.2.2")
    updated = world.cycle(0.5)
    assert [d.subject for d in updated.deliveries] == [f"gitbot({POLICY}): podinfo-canary {CANARY_TAG} -> 0.2.2"]
    world.cycle(1)
    assert weights(world.routes_text()) == at(10)
    assert canary_image(world).endswith(":0.2.2")

    failed = world.cycle(8)
    assert action(failed) == "rollback"
    assert weights(world.routes_text()) == at(0)
    # Git shows the last good state: the canary runs the tag from before 0.2.2 again, 0.2.2 is quarantined.
    assert canary_image(world) == f"{world.registry.host}/{world.image_repo}:{CANARY_TAG}"
    message = world.server.message(world.repo)
    assert ("Gitbot-Quarantine", "podinfo-canary=0.2.2") in trailers(message)
    assert ("Gitbot-Target", "podinfo-canary") in trailers(message)
    assert f"returns canary image podinfo-canary from 0.2.2 to {CANARY_TAG}" in message
    report = status(world.policy, world.deps)
    (canary,) = [image for image in report.images if image.name == "podinfo-canary"]
    assert canary.current == (CANARY_TAG,) and running_quarantined(canary) == ()

    # The quarantined tag is not proposed again; the canary waits at 0 for a newer one.
    waiting = world.cycle(12)
    assert action(waiting) == "hold" and waiting.deliveries == ()
    assert world.validate_every_version() == 4


def test_status_flags_a_target_that_runs_a_quarantined_tag(make_world: WorldFactory, git_server: GitServer) -> None:
    # The seed's canary tag has no earlier one in git to go back to: it stays, at 0 %, and status says so.
    world = make_world("errors")
    world.cycle(1)
    assert action(world.cycle(8)) == "rollback"
    assert canary_image(world).endswith(f":{CANARY_TAG}")
    report = status(world.policy, world.deps)
    (canary,) = [image for image in report.images if image.name == "podinfo-canary"]
    assert running_quarantined(canary) == (CANARY_TAG,)
    (ga,) = [image for image in report.images if image.name == "podinfo-ga"]
    assert running_quarantined(ga) == ()
    printed = ok(gitbot(world, git_server, "status", "--policy", POLICY))
    at_canary = printed.index(
        f"  podinfo-canary: running {CANARY_TAG}; newest allowed (none newer than a quarantined tag)"
    )
    assert printed[at_canary + 1].startswith(f"    quarantined {CANARY_TAG}: rolled back by ")
    assert printed[at_canary + 2] == f"    ! Deployment/test/podinfo-canary runs quarantined tag {CANARY_TAG}"
    assert not any("! Deployment/test/podinfo-ga" in line for line in printed)


def test_metrics_and_the_cycle_log_report_the_committed_weight_and_the_proposed_one_apart(
    make_world: WorldFactory, github_fake: GitHubFake, caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world("healthy", github=github_fake)
    proposed = world.cycle(1)
    assert delivered(proposed) == [("podinfo", "opened")]
    service_metrics = ServiceMetrics()

    # The pull request only proposes 10 %: the branch, and so the cluster, still has 0 %.
    summary = summarize(proposed, 0.5)
    assert summary.canaries == {"podinfo": (0, "unknown")}
    assert summary.proposed == {"podinfo": 10}
    service_metrics.record_cycle(summary, now=0)
    exposition = service_metrics.exposition().decode()
    assert 'gitbot_canary_weight_percent{canary="podinfo",policy="production"} 0.0' in exposition
    assert 'gitbot_canary_proposed_weight_percent{canary="podinfo",policy="production"} 10.0' in exposition
    service = Service([world.policy], lambda _policy: summary, port=0)
    with caplog.at_level(logging.INFO, logger="gitbot.service"):
        service.record(summary)
    (event,) = [r for r in caplog.records if r.getMessage() == "cycle"]
    assert getattr(event, FIELDS)["canaries"] == {"podinfo": {"weight": 0, "verdict": "unknown", "proposed": 10}}

    # Merged: the weight is committed, and nothing is proposed any more.
    merge(world, open_pulls(world)[0])
    settled = summarize(world.cycle(1.5), 0.5)
    assert settled.canaries["podinfo"][0] == 10 and settled.proposed == {}
    service_metrics.record_cycle(settled, now=0)
    exposition = service_metrics.exposition().decode()
    assert 'gitbot_canary_weight_percent{canary="podinfo",policy="production"} 10.0' in exposition
    assert "gitbot_canary_proposed_weight_percent{" not in exposition


def test_a_rollback_pushed_in_pull_request_mode_that_loses_a_race_is_planned_again_and_lands_once(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("errors", github=github_fake)
    world.cycle(1)
    merge(world, open_pulls(world)[0])
    readme = "clusters/production/README.md"
    theirs = world.server.race_next_push(world.repo, {readme: "podinfo\n"}, "Describe the production cluster")

    failed = world.cycle(8)

    assert not world.server.race_pending(world.repo)
    assert failed.attempts == 2 and action(failed) == "rollback"
    log = world.log()
    assert [c.subject for c in log[:2]] == [
        f"gitbot({POLICY}): roll back podinfo canary (success-rate 92 < 99; 8pp below GA)",
        "Describe the production cluster",
    ]
    assert log[1].sha == theirs and [d.outcome for d in failed.deliveries] == ["committed"]
    assert weights(world.routes_text()) == at(0)
    assert world.server.read_file(world.repo, readme) == "podinfo\n"
    assert open_pulls(world) == []
