"""What people hear, over whole cycles: every event kind reaches a loopback Slack and webhook receiver from
`gitbot once` (its notification call, on the scenario's clock) and from the commands a person runs (the
real CLI commands in-process); each Slack post is Block Kit within Slack's limits and each webhook post
follows the published schema. Lasting events are told once, by the cycle whose window holds their start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from gitbot.cli import cli
from gitbot.commands.announce import announce_cycle
from gitbot.config import load_policy
from gitbot.cycle import CycleResult
from tests.contract.notify.conftest import Post, Receiver, receiver_server, validate_post
from tests.scenarios_canary.conftest import POLICY, World, WorldFactory, minute
from tests.support.github_fake import GitHubFake
from tests.support.gitserver import GitServer

__all__ = ["receiver_server"]

NOTIFY = "  notifications:\n    - slack: {webhookEnv: NOTIFY_SLACK_URL}\n    - webhook: {urlEnv: NOTIFY_HOOK_URL}\n"


@pytest.fixture
def receiver(receiver_server: Receiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    receiver_server.reset()
    monkeypatch.setenv("NOTIFY_SLACK_URL", receiver_server.base + "/slack")
    monkeypatch.setenv("NOTIFY_HOOK_URL", receiver_server.base + "/hook")
    yield receiver_server


def notifying(world: World) -> World:
    """The world's policy with a Slack and a webhook receiver."""
    assert world.policy_path is not None
    with world.policy_path.open("a", encoding="utf-8") as out:
        out.write(NOTIFY)
    world.policy = load_policy(world.policy_path)
    return world


def once(world: World, receiver: Receiver, at: float) -> tuple[CycleResult, list[dict[str, Any]]]:
    """`gitbot once` at minute `at`: the cycle, then its notification call; the webhook documents it sent."""
    before = len(receiver.posts)
    result = world.cycle(at)
    announce_cycle(world.policy, result, now=world.clock.now())
    return result, hooks(receiver.posts[before:])


def hooks(posts: list[Post]) -> list[dict[str, Any]]:
    """Validate every post (Slack against Block Kit, the webhook against the schema); the webhook's bodies.

    Every notice goes to both receivers, Slack first."""
    for post in posts:
        validate_post(post)
    assert [p.path for p in posts] == ["/slack", "/hook"] * (len(posts) // 2)
    return [p.body for p in posts if p.path == "/hook"]


def events(bodies: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(b["event"], b["text"]) for b in bodies]


def test_steps_complete_and_their_figures_are_told_once(make_world: WorldFactory, receiver: Receiver) -> None:
    world = notifying(make_world("healthy"))
    _, first = once(world, receiver, 1)
    assert events(first) == [("canary-step", "podinfo canary 0% -> 10%: committed to main")]
    sha = world.log()[0].sha
    assert (first[0]["delivery"], first[0]["ref"], first[0]["source"]) == ("committed", sha, "once")
    # The loopback git server is no forge whose commit pages are known: the sha stands for the link.
    assert first[0]["link"] is None
    slack = receiver.posts[0].body
    assert slack["blocks"][0]["text"]["text"] == "Canary step: podinfo"
    assert sha in slack["blocks"][1]["text"]["text"]
    assert once(world, receiver, 12)[1] == []
    _, second = once(world, receiver, 14)
    assert events(second) == [("canary-step", "podinfo canary 10% -> 60%: committed to main")]
    step = second[0]
    assert step["verdict"] == "pass" and {c["name"] for c in step["checks"]} == {
        "requests",
        "success-rate",
        "latency-p99",
    }
    assert all(c["verdict"] == "pass" and c["canary"] is not None for c in step["checks"])
    assert step["fields"]["Weight"] == "10% → 60%"
    assert step["fields"]["success-rate"].startswith("pass: canary ")
    assert events(once(world, receiver, 27)[1]) == [("canary-step", "podinfo canary 60% -> 100%: committed to main")]
    # The dwell at 100% ended at 38 (the step showed at 28): the cycle at 40 tells it, the one at 45 does not.
    _, done = once(world, receiver, 40)
    assert events(done) == [("canary-complete", "canary podinfo complete at 100%")]
    assert done[0]["fields"]["Weight"] == "100%" and done[0]["checks"]
    assert once(world, receiver, 45)[1] == []


def test_a_rollback_is_told_with_the_failing_figures(make_world: WorldFactory, receiver: Receiver) -> None:
    world = notifying(make_world("errors"))
    once(world, receiver, 1)
    _, failed = once(world, receiver, 8)
    assert [b["event"] for b in failed] == ["rollback"]
    rollback = failed[0]
    assert rollback["text"].endswith(": committed to main") and rollback["verdict"] == "fail"
    assert rollback["detail"] == "analysis failed at 10%: roll back to 0%"
    (rate,) = [c for c in rollback["checks"] if c["name"] == "success-rate"]
    assert rate["verdict"] == "fail" and rate["canary"] == pytest.approx(92, abs=1)
    assert rollback["fields"]["success-rate"].startswith("fail: canary 92")
    assert rollback["ref"] == world.log()[0].sha


def test_a_promotion_is_told(make_world: WorldFactory, receiver: Receiver) -> None:
    world = notifying(make_world("healthy", on_complete="promote\n      promoteTo: podinfo-ga"))
    for moment in (1, 14, 27):
        once(world, receiver, moment)
    _, promoted = once(world, receiver, 40)
    assert events(promoted) == [("canary-promoted", "promote podinfo canary 0.2.1 to podinfo-ga: committed to main")]
    assert promoted[0]["fields"]["Weight"] == "100%"


def test_an_inconclusive_hold_is_told_in_the_first_cycle_past_notify_after(
    make_world: WorldFactory, receiver: Receiver
) -> None:
    world = notifying(make_world("steady", min_requests=1000, notify_after=3))
    once(world, receiver, 1)
    told = [events(once(world, receiver, moment)[1]) for moment in (6, 11, 16, 21, 26)]
    assert told == [
        [],
        [],
        [],
        [("canary-inconclusive", "canary podinfo holds at 10%: analysis inconclusive for 20m")],
        [],
    ]


def test_a_step_not_applied_is_told_once(make_world: WorldFactory, receiver: Receiver) -> None:
    # The route says 10 % from minute 1 but no request reaches the canary; applyTimeout is 15 minutes.
    world = notifying(make_world("nocanary"))
    once(world, receiver, 1)
    told = [events(once(world, receiver, moment)[1]) for moment in (6, 11, 16, 21, 26)]
    assert told == [[], [], [], [("step-not-applied", "canary podinfo: step to 10% not applied after 20m")], []]


def test_a_persons_revert_of_a_step_is_told_once(make_world: WorldFactory, receiver: Receiver) -> None:
    world = notifying(make_world("resumed"))
    once(world, receiver, 1)
    once(world, receiver, 14)
    step = world.log()[0]
    world.revert_as_person(step, to=world.log()[1].sha, date=minute(18))
    _, seen = once(world, receiver, 20)
    assert [b["event"] for b in seen] == ["revert-quarantine"]
    revert = seen[0]
    assert revert["text"] == "Other Person reverted podinfo canary 10% -> 60%"
    assert revert["fields"]["Reverted by"] == "Other Person"
    assert revert["detail"] == "canary podinfo holds until `gitbot resume podinfo`"
    assert revert["ref"] == world.log()[0].sha
    # Read again by a restarted bot a window later, the same revert is not told again.
    world.restart()
    assert [b["event"] for b in once(world, receiver, 25)[1]] == []


def test_pull_requests_opened_and_updated_are_told_apart(
    make_world: WorldFactory, receiver: Receiver, github_fake: GitHubFake
) -> None:
    world = notifying(make_world("healthy", github=github_fake))
    _, opened = once(world, receiver, 1)
    assert [(b["event"], b["delivery"]) for b in opened] == [("canary-step", "opened")]
    pull = opened[0]
    assert pull["text"] == "Pull request opened: podinfo canary 0% -> 10%"
    assert pull["link"] == pull["ref"] and "/pull/" in pull["ref"]
    assert "pull request" in receiver.posts[0].body["blocks"][1]["text"]["text"]


def run(world: World, git_server: GitServer, *args: str) -> Any:
    assert world.policy_path is not None
    env = {
        "SCENARIO_GIT_TOKEN": git_server.token,
        "GITBOT_CACHE_DIR": str(world.policy_path.parent / "cli-cache"),
        "GITBOT_POLICIES": str(world.policy_path.parent),
    }
    result = CliRunner().invoke(cli, [*args, "--policy", POLICY], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_commands_run_by_hand_are_told(make_world: WorldFactory, receiver: Receiver, git_server: GitServer) -> None:
    world = notifying(make_world("healthy"))
    world.cycle(1)
    run(world, git_server, "pause", "podinfo", "--reason", "looking into p99")
    run(world, git_server, "resume", "podinfo")
    run(world, git_server, "promote", "podinfo", "--to", "60")
    run(world, git_server, "rollback", "podinfo")
    bodies = hooks(receiver.posts)
    assert [(b["event"], b["source"]) for b in bodies] == [
        ("canary-paused", "pause"),
        ("canary-resumed", "resume"),
        ("canary-step", "promote"),
        ("rollback", "rollback"),
    ]
    assert bodies[0]["fields"]["Reason"] == "looking into p99"
    assert bodies[2]["text"].startswith("podinfo canary 10% -> 60%") and "by hand" in bodies[2]["text"]
    shas = [c.sha for c in world.log()[:4]]
    assert [b["ref"] for b in bodies] == shas[::-1]
    # Run again after it landed, a command changes nothing and tells nothing.
    receiver.reset()
    run(world, git_server, "resume", "podinfo")
    assert receiver.posts == []


def test_a_receiver_that_fails_never_fails_the_command(
    make_world: WorldFactory, receiver: Receiver, git_server: GitServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = notifying(make_world("healthy"))
    world.cycle(1)
    receiver.statuses[:] = [500, 500, 500, 500]
    monkeypatch.setenv("NOTIFY_HOOK_URL", receiver.base + "/hook/Zq9SecretHookPath")
    result = run(world, git_server, "pause", "podinfo")
    assert result.stdout.startswith("paused podinfo")
    assert "webhook notification of canary-paused (production) not sent" in result.stderr
    assert "Zq9SecretHookPath" not in result.output
    # An unset variable is said in one line; the command did its work.
    monkeypatch.delenv("NOTIFY_SLACK_URL")
    resumed = run(world, git_server, "resume", "podinfo")
    assert "notifications not sent:" in resumed.stderr and "NOTIFY_SLACK_URL" in resumed.stderr
