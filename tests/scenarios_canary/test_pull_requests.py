"""Canary steps and rollbacks in pull-request mode: one PR on `gitbot/<policy>/<canary>` with the evidence
table and a Mermaid chart of canary vs GA p99 latency, never duplicated; a merge (the environment branch
fast-forwarded) lets the next step follow; a failing analysis proposes a real `git revert` of the steps."""

from __future__ import annotations

import re

from gitbot.config import load_policy
from gitbot.cycle import CycleResult
from gitbot.manual import promote, rollback, status
from gitbot.messages import plan_id_in
from tests.scenarios_canary.conftest import CANARY_TAG, POLICY, World, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import action, at, trailers
from tests.support.github_fake import FakePull, GitHubFake

BRANCH = f"gitbot/{POLICY}/podinfo"


def open_pulls(world: World) -> list[FakePull]:
    assert world.github is not None
    return world.github.list_pulls("open")


def rev(world: World, ref: str) -> str:
    return world.server.git(world.repo, "rev-parse", ref).strip()


def merge(world: World, pull: FakePull) -> str:
    """A person merges `pull` on the website: the environment branch is fast-forwarded to its head."""
    assert world.github is not None
    sha = rev(world, pull.head)
    assert world.server.git(world.repo, "merge-base", "--is-ancestor", "main", sha) == ""
    world.server.git(world.repo, "update-ref", "refs/heads/main", sha)
    world.github.merge(pull.number, sha)
    return sha


def mermaid_chart(body: str) -> tuple[str, tuple[float, float], tuple[float, float], list[list[float]]]:
    """The x-axis title and range, y-axis range and line series of the one `xychart-beta` block in `body`."""
    blocks = re.findall(r"```mermaid\n(.*?)\n```", body, flags=re.DOTALL)
    assert len(blocks) == 1, body
    lines = [line.strip() for line in blocks[0].splitlines()]
    assert lines[0].startswith("%%{init: ") and "plotColorPalette" in lines[0], lines[0]
    assert lines[1] == "xychart-beta"
    assert re.fullmatch(r'title "[^"]+"', lines[2]), lines[2]
    number = r"(\d+(?:\.\d+)?)"
    x_axis = re.fullmatch(rf'x-axis "([^"]+)" {number} --> {number}', lines[3])
    assert x_axis is not None, lines[3]
    y_axis = re.fullmatch(rf'y-axis "[^"]+" {number} --> {number}', lines[4])
    assert y_axis is not None, lines[4]
    series = []
    for line in lines[5:]:
        found = re.fullmatch(r"line \[(.*)\]", line)
        assert found is not None, line
        series.append([float(value) for value in found.group(1).split(",")])
    x_range = (float(x_axis.group(2)), float(x_axis.group(3)))
    return x_axis.group(1), x_range, (float(y_axis.group(1)), float(y_axis.group(2))), series


def review_rollbacks(world: World) -> None:
    """Set `delivery.rollback: pull-request` in the world's policy: rollbacks wait for a review again."""
    assert world.policy_path is not None
    text = world.policy_path.read_text(encoding="utf-8")
    marker = "labels: [gitbot, canary]}\n"
    assert marker in text
    world.policy_path.write_text(text.replace(marker, marker + "    rollback: pull-request\n"), encoding="utf-8")
    world.policy = load_policy(world.policy_path)
    assert world.policy.spec.delivery.rollback == "pull-request"


def delivered(result: CycleResult) -> list[tuple[str, str]]:
    return [(d.name, d.outcome) for d in result.deliveries]


def test_canary_steps_as_pull_requests_with_evidence_and_chart(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("healthy", github=github_fake)
    seed = world.log()[0].sha

    first = world.cycle(1)
    assert delivered(first) == [("podinfo", "opened")]
    assert world.log()[0].sha == seed, "pull-request mode must not touch the environment branch"
    (pull,) = open_pulls(world)
    assert pull.head == BRANCH and pull.base == "main" and pull.labels == ["gitbot", "canary"]
    assert pull.title == f"gitbot({POLICY}): podinfo canary 0% -> 10%"
    assert plan_id_in(pull.body or "") == first.plans[0].plan_id
    assert weights(world.routes_text(BRANCH)) == at(10)
    # A rerun finds its own pull request by the hidden plan id: nothing new.
    again = world.cycle(1.5)
    assert delivered(again) == [("podinfo", "unchanged")]
    assert len(github_fake.list_pulls()) == 1

    merge(world, pull)
    # Merged at minute 1; the traffic follows from minute 2 and the dwell ends at 13.
    assert world.cycle(12).deliveries == ()
    second = world.cycle(14)
    assert delivered(second) == [("podinfo", "opened")]
    (step,) = open_pulls(world)
    assert step.number != pull.number and step.head == BRANCH
    assert step.title == f"gitbot({POLICY}): podinfo canary 10% -> 60%"
    body = step.body or ""
    assert f"<!-- gitbot:plan-id={second.plans[0].plan_id} -->" in body
    assert "| file | resource | field | old | new |" in body
    assert "| `clusters/production/routes.yaml` | VirtualService/test/podinfo |" in body
    assert "### Evidence" in body
    assert "| Check | Canary | GA | Threshold | Verdict | Window |" in body
    assert "| success-rate | 100.00% | 100.00% |" in body and "**Verdict: pass**" in body
    assert "Observed canary share of requests over the window: 10.0%." in body
    x_title, x_range, (low, high), series = mermaid_chart(body)
    # Lines GA, the latency limit and the canary, within the y-axis; both sides healthy (175 ms p99).
    assert len(series) == 3 and "canary p99 in orange, GA p99 in blue, limit (1.5x GA) in grey" in body
    # Every 15 s over the 5-minute window of the cycle at minute 14, both ends included.
    assert all(len(values) == 21 for values in series)
    assert x_title == "minutes since 12:09:00 UTC" and x_range == (0, 5)
    assert low == 0 and all(0 < value <= high for values in series for value in values)
    series = [series[0], series[2]]
    assert all(abs(value - 175.0) < 1 for values in series for value in values)
    # The branch holds one commit on the environment branch: the step, with its trailers and evidence.
    assert rev(world, f"{BRANCH}~1") == world.log()[0].sha
    message = world.server.message(world.repo, BRANCH)
    assert ("Gitbot-Action", "canary-step") in trailers(message) and ("Gitbot-To", "60") in trailers(message)
    assert weights(world.routes_text(BRANCH)) == at(60)
    assert weights(world.routes_text()) == at(10)
    assert delivered(world.cycle(14.5)) == [("podinfo", "unchanged")]
    assert len(github_fake.list_pulls()) == 2
    assert [(p.number, p.head) for p in status(world.policy, world.deps).pulls] == [(step.number, BRANCH)]


def test_a_failing_canary_gets_a_rollback_pull_request_that_reverts_its_steps(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("slow", github=github_fake)
    review_rollbacks(world)
    world.cycle(1)
    step10 = merge(world, open_pulls(world)[0])
    world.cycle(14)
    step60 = merge(world, open_pulls(world)[0])
    assert weights(world.routes_text()) == at(60)

    failed = world.cycle(24)
    assert action(failed) == "rollback"
    assert delivered(failed) == [("podinfo", "opened")]
    (pull,) = open_pulls(world)
    subject = f"gitbot({POLICY}): roll back podinfo canary (p99 2.14x GA)"
    assert pull.title == subject and pull.head == BRANCH
    body = pull.body or ""
    # The steps it undoes are a list of their own, apart from the evidence, and the body says what merging does.
    assert f"### Undoes\n\n- {step60}\n- {step10}\n\n### Evidence\n\nDecision: " in body
    assert "This reverts commit" not in body and "quarantined and not proposed again" not in body
    assert "### Merging or closing\n\nMerging this ends canary podinfo at 0% (GA 100%)" in body
    assert "| latency-p99 |" in body and "**Verdict: fail**" in body
    assert f"Quarantined canary tag: {CANARY_TAG}" in body
    _title, _range, _y, (ga, _limit, canary) = mermaid_chart(body)
    # The window ends with the canary 2.5x slower: its last p99 is far above GA's.
    assert canary[-1] > 2 * ga[-1]
    # The PR branch's commit is a real `git revert` of both steps on the environment branch's head.
    assert rev(world, f"{BRANCH}~1") == step60
    assert rev(world, f"{BRANCH}^{{tree}}") == rev(world, f"{step10}~1^{{tree}}")
    message = world.server.message(world.repo, BRANCH)
    assert message.splitlines()[0] == subject
    assert f"This reverts commit {step60}.\nThis reverts commit {step10}.\n" in message
    assert ("Gitbot-Quarantine", f"podinfo-canary={CANARY_TAG}") in trailers(message)
    assert ("Gitbot-Action", "rollback") in trailers(message)
    assert weights(world.routes_text(BRANCH)) == at(0)
    assert weights(world.routes_text()) == at(60), "the environment branch waits for the merge"

    # Still failing a minute later, not yet merged: the same pull request, not a second one.
    assert delivered(world.cycle(25)) == [("podinfo", "unchanged")]
    assert len(open_pulls(world)) == 1
    reverted = merge(world, pull)
    # A person's `gitbot rollback` after the merge finds the cycle's rollback and changes nothing.
    by_hand = rollback(world.policy, world.deps, "podinfo")
    assert (by_hand.outcome, by_hand.ref) == ("unchanged", reverted)
    assert by_hand.subject == f"already rolled back by {reverted[:7]}: {subject}"
    assert open_pulls(world) == [] and rev(world, "main") == reverted
    after = world.cycle(30)
    assert action(after) == "hold" and after.deliveries == ()
    assert after.canaries[0].decision is not None
    assert "waiting for a newer canary tag" in after.canaries[0].decision.reason


def test_a_step_by_hand_is_its_own_pull_request_and_the_cycle_leaves_it_open(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("healthy", github=github_fake)
    world.cycle(1)
    merge(world, open_pulls(world)[0])

    world.clock.set(minute(5))
    by_hand = promote(world.policy, world.deps, "podinfo", to=100)
    assert by_hand.outcome == "opened"
    (pull,) = open_pulls(world)
    assert pull.title == f"gitbot({POLICY}): podinfo canary 10% -> 100%"
    assert pull.head == f"gitbot/{POLICY}/promote-podinfo" and pull.labels == ["gitbot", "canary"]
    assert weights(world.routes_text(pull.head)) == at(100)
    proposed = rev(world, pull.head)
    # Asked again (after a crash, say): the open pull request is the answer, not a second change.
    again = promote(world.policy, world.deps, "podinfo", to=100)
    assert (again.outcome, again.ref) == ("unchanged", by_hand.ref)
    assert again.subject == f"already proposed in {by_hand.ref}: {pull.title}"
    assert [p.number for p in open_pulls(world)] == [pull.number] and rev(world, pull.head) == proposed

    # The cycle is still dwelling at 10 %: it has nothing of its own to propose and must not close a
    # person's request as superseded.
    assert world.cycle(6).deliveries == ()
    assert [p.number for p in open_pulls(world)] == [pull.number]
    assert github_fake.comments_on(pull.number) == []
    # After the dwell the cycle proposes its own next step beside it, without rewriting it.
    assert delivered(world.cycle(14)) == [("podinfo", "opened")]
    titles = sorted(p.title for p in open_pulls(world))
    assert titles == [f"gitbot({POLICY}): podinfo canary 10% -> 100%", f"gitbot({POLICY}): podinfo canary 10% -> 60%"]
    assert weights(world.routes_text(pull.head)) == at(100)


def test_an_open_pull_request_for_a_newer_canary_tag_does_not_hold_back_a_rollback(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    # Until merged, the proposed tag does not run: the canary that fails is the one on the branch.
    world = make_world("slow", github=github_fake)
    world.cycle(1)
    merge(world, open_pulls(world)[0])
    world.cycle(14)
    merge(world, open_pulls(world)[0])
    world.push_tags("0.2.2")

    failed = world.cycle(24)

    assert action(failed) == "rollback"
    # The rollback is on the branch at once; the newer tag is proposed from the branch as it leaves it.
    assert sorted(delivered(failed)) == [("podinfo", "committed"), ("podinfo-canary", "opened")]
    assert world.log()[0].subject == f"gitbot({POLICY}): roll back podinfo canary (p99 2.14x GA)"
    assert weights(world.routes_text()) == at(0)
    (image,) = open_pulls(world)
    assert image.title == f"gitbot({POLICY}): podinfo-canary {CANARY_TAG} -> 0.2.2"
    assert rev(world, f"{image.head}~1") == rev(world, "main")


def test_a_rollback_pull_request_ends_at_0_when_a_person_set_the_weight_before_the_bots_steps(
    make_world: WorldFactory, github_fake: GitHubFake
) -> None:
    world = make_world("slow", canary_weight=10, github=github_fake)
    review_rollbacks(world)
    world.cycle(14)
    step60 = merge(world, open_pulls(world)[0])
    assert weights(world.routes_text()) == at(60)

    failed = world.cycle(24)
    assert action(failed) == "rollback" and delivered(failed) == [("podinfo", "opened")]
    # The revert of the one step gives back the person's 10 %: the same commit on the branch sets 0 %.
    assert rev(world, f"{BRANCH}~1") == step60
    assert weights(world.routes_text(BRANCH)) == at(0)
    message = world.server.message(world.repo, BRANCH)
    assert f"This reverts commit {step60}.\n\n" in message
    assert "restores the canary weight from before them, 10%; this commit then sets it from 10% to 0%" in message
    assert ("Gitbot-From", "60") in trailers(message) and ("Gitbot-To", "0") in trailers(message)
