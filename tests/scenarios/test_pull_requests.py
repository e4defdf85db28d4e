"""Pull-request mode, whole cycles against the real git server, registry and the GitHub fake: one PR per
image on `gitbot/<policy>/<image>`, updated in place, never duplicated (also after a crash between the branch
push and the PR), closed with a comment when no longer needed; merges and reverts are read back from git."""

from __future__ import annotations

import pytest

from gitbot.cycle import run_cycle
from gitbot.errors import AuthError, ForgeError
from gitbot.manual import rollback, status
from gitbot.messages import plan_id_in
from tests.scenarios.conftest import POLICY, WORKLOADS, World, image_yaml, person_git, person_reverts
from tests.support.github_fake import FakePull
from tests.support.killed import Killed, killed_after_push

pytestmark = pytest.mark.real

GA_BRANCH = f"gitbot/{POLICY}/podinfo-ga"
CANARY_BRANCH = f"gitbot/{POLICY}/podinfo-canary"


def ga_only(world: World) -> None:
    world.write_policy(
        images=image_yaml(world.image, "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod"),
    )


def pulls(world: World, state: str = "all") -> list[FakePull]:
    assert world.github is not None
    return world.github.list_pulls(state)


def test_new_tags_open_one_pull_request_per_image_and_a_rerun_changes_nothing(pr_world: World) -> None:
    world = pr_world
    seed = world.git.head(world.repo)

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [(d.name, d.outcome) for d in result.deliveries] == [
        ("podinfo-ga", "opened"),
        ("podinfo-canary", "opened"),
    ]
    assert world.git.head(world.repo) == seed, "pull-request mode must not touch the environment branch"
    opened = {p.head: p for p in pulls(world)}
    assert sorted(opened) == sorted([GA_BRANCH, CANARY_BRANCH])
    ga = opened[GA_BRANCH]
    assert ga.base == "main" and ga.state == "open"
    assert ga.title == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2"
    assert ga.labels == ["gitbot", "release"]
    assert result.deliveries[0].ref.endswith(f"/pull/{ga.number}")
    body = ga.body or ""
    plan = result.plans[0]
    assert plan_id_in(body) == plan.plan_id
    assert f"<!-- gitbot:plan-id={plan.plan_id} -->" in body
    assert "| file | resource | field | old | new |" in body
    assert (
        f"| `{WORKLOADS}` | Deployment/test/podinfo-ga | `/spec/template/spec/containers/0/image` "
        f"| `{world.image}:0.1.0` | `{world.image}:0.1.2` |"
    ) in body
    assert "### Why" in body and "0.1.2 is the newest tag" in body and "`0.1.*`" in body
    assert "### Rolling back" in body and f"gitbot rollback podinfo-ga --policy {POLICY}" in body
    # Each branch is one commit on the environment branch's head, changing only its own tag.
    assert world.workloads(GA_BRANCH) == world.expected_workloads(ga="0.1.2")
    assert world.workloads(CANARY_BRANCH) == world.expected_workloads(canary="0.2.1")
    assert world.git.git(world.repo, "rev-parse", f"{GA_BRANCH}~1").strip() == seed
    assert "Gitbot-Plan-Id: " + plan.plan_id in world.git.message(world.repo, GA_BRANCH)

    again = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in again.deliveries] == ["unchanged", "unchanged"]
    assert len(pulls(world)) == 2
    report = status(world.policy(), world.deps())
    assert sorted((p.head, p.title) for p in report.pulls) == sorted((p.head, p.title) for p in pulls(world))
    assert [(i.name, i.current, i.newest) for i in report.images] == [
        ("podinfo-ga", ("0.1.0",), "0.1.2"),
        ("podinfo-canary", ("0.2.0",), "0.2.1"),
    ]


def test_pull_request_updated_in_place_merged_reverted_and_reopened_for_a_newer_tag(pr_world: World) -> None:
    world = pr_world
    ga_only(world)
    run_cycle(world.policy(), world.deps(), deliver=True)
    (first,) = pulls(world)
    first_sha = world.git.head(world.repo, GA_BRANCH)
    first_plan = plan_id_in(first.body or "")

    # A newer tag: the same pull request is edited and its branch force-updated.
    world.push_tags("0.1.3")
    updated = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in updated.deliveries] == ["updated"]
    (same,) = pulls(world)
    assert same.number == first.number and same.state == "open"
    assert same.title == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.3"
    assert plan_id_in(same.body or "") == updated.plans[0].plan_id != first_plan
    second_sha = world.git.head(world.repo, GA_BRANCH)
    assert second_sha != first_sha
    assert world.workloads(GA_BRANCH) == world.expected_workloads(ga="0.1.3")

    # A person merges it (fast-forward): the next cycle has nothing to do.
    assert world.github is not None
    world.git.git(world.repo, "update-ref", "refs/heads/main", str(second_sha))
    world.github.merge(same.number, second_sha)
    merged = run_cycle(world.policy(), world.deps(), deliver=True)
    assert merged.plans == () and merged.deliveries == ()

    # A person reverts the merged change: 0.1.3 is quarantined and nothing older is proposed.
    person_reverts(world, str(second_sha))
    assert run_cycle(world.policy(), world.deps(), deliver=True).deliveries == ()
    report = status(world.policy(), world.deps())
    assert [tag for tag, _ in report.images[0].quarantined] == ["0.1.3"]
    assert report.pulls == ()
    assert len(pulls(world)) == 1

    # A newer tag after the quarantined one: a new pull request.
    world.push_tags("0.1.4")
    reopened = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in reopened.deliveries] == ["opened"]
    open_now = pulls(world, "open")
    assert len(open_now) == 1 and open_now[0].number != same.number
    assert open_now[0].title == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.4"
    assert "Skipped as quarantined" in (open_now[0].body or "")
    assert world.workloads(GA_BRANCH) == world.expected_workloads(ga="0.1.4")


def test_restart_between_branch_push_and_pull_request_leaves_exactly_one(pr_world: World) -> None:
    world = pr_world
    ga_only(world)
    assert world.github is not None
    world.github.fail_next("POST", r"/pulls$", 502)

    with pytest.raises(ForgeError):
        run_cycle(world.policy(), world.deps(), deliver=True)
    assert world.git.head(world.repo, GA_BRANCH) is not None
    assert pulls(world) == []

    resumed = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [d.outcome for d in resumed.deliveries] == ["opened"]
    assert [d.outcome for d in run_cycle(world.policy(), world.deps(), deliver=True).deliveries] == ["unchanged"]
    assert len(pulls(world)) == 1


def test_pull_request_no_longer_needed_is_closed_with_a_comment(pr_world: World) -> None:
    world = pr_world
    ga_only(world)
    run_cycle(world.policy(), world.deps(), deliver=True)
    (pull,) = pulls(world)

    # Someone sets the tag by hand on the environment branch.
    world.git.commit_as_other(world.repo, {WORKLOADS: world.expected_workloads(ga="0.1.2")}, "podinfo-ga 0.1.2")
    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [(d.outcome, d.ref) for d in result.deliveries] == [("closed", result.deliveries[0].ref)]
    assert result.deliveries[0].ref.endswith(f"/pull/{pull.number}")
    (closed,) = pulls(world)
    assert closed.state == "closed" and not closed.merged
    assert world.github is not None
    (comment,) = world.github.comments_on(pull.number)
    assert "no longer needed" in comment
    assert run_cycle(world.policy(), world.deps(), deliver=True).deliveries == ()


def test_rollback_pull_request_stays_open_through_later_cycles(pr_world: World) -> None:
    world = pr_world
    ga_only(world)
    assert world.github is not None
    run_cycle(world.policy(), world.deps(), deliver=True)
    (pull,) = pulls(world)
    sha = world.git.head(world.repo, GA_BRANCH)
    world.git.git(world.repo, "update-ref", "refs/heads/main", str(sha))
    world.github.merge(pull.number, sha)

    delivery = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert delivery.outcome == "opened"
    branch = f"gitbot/{POLICY}/rollback-podinfo-ga"
    assert world.workloads(branch) == world.expected_workloads(ga="0.1.0")
    assert f"This reverts commit {sha}." in world.git.message(world.repo, branch)
    assert world.git.head(world.repo) == sha

    later = run_cycle(world.policy(), world.deps(), deliver=True)

    assert later.deliveries == ()
    (open_pull,) = pulls(world, "open")
    assert open_pull.head == branch and delivery.ref.endswith(f"/pull/{open_pull.number}")
    assert world.github.comments_on(open_pull.number) == []


def test_wrong_github_token_fails_with_one_line_before_pushing_anything(pr_world: World) -> None:
    world = pr_world
    world.env["GITHUB_TOKEN"] = "ghp_wrongwrongwrong0123456789"

    with pytest.raises(AuthError) as caught:
        run_cycle(world.policy(), world.deps(), deliver=True)

    line = caught.value.one_line()
    assert "HTTP 401" in line and "acme/cluster-config" in line and "\n" not in line
    assert "ghp_wrongwrongwrong0123456789" not in line
    assert world.git.branches(world.repo) == ["main"]
    assert pulls(world) == []


def test_revert_of_a_merge_commit_quarantines_the_tag_the_pull_request_brought(pr_world: World) -> None:
    world = pr_world
    ga_only(world)
    assert world.github is not None
    run_cycle(world.policy(), world.deps(), deliver=True)
    (pull,) = pulls(world)

    # Merged with a merge commit, then reverted the way GitHub's Revert button does for such merges.
    merge = person_git(
        world,
        ("fetch", "--quiet", "origin", GA_BRANCH),
        ("merge", "--no-ff", "--quiet", "-m", f"Merge pull request #{pull.number}", "FETCH_HEAD"),
    )
    world.github.merge(pull.number, merge)
    assert world.workloads() == world.expected_workloads(ga="0.1.2")
    revert = person_git(world, ("revert", "--no-edit", "-m", "1", merge))

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert result.deliveries == ()
    assert world.git.head(world.repo) == revert
    report = status(world.policy(), world.deps())
    assert [tag for tag, _ in report.images[0].quarantined] == ["0.1.2"]
    assert f"reverted by {revert[:7]}" in report.images[0].quarantined[0][1]


def test_group_all_opens_one_pull_request_for_every_image(pr_world: World) -> None:
    world = pr_world
    world.write_policy(group="all")

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [(d.name, d.outcome) for d in result.deliveries] == [("images", "opened")]
    (pull,) = pulls(world)
    assert pull.head == f"gitbot/{POLICY}/images"
    assert pull.title == f"gitbot({POLICY}): update 2 images (podinfo-ga 0.1.2, podinfo-canary 0.2.1)"
    body = pull.body or ""
    assert "| Deployment/test/podinfo-ga |" in body and "| Deployment/test/podinfo-canary |" in body
    # `gitbot rollback` takes an image name: the change is named after none of them.
    assert f"`gitbot rollback podinfo-ga --policy {POLICY}` (it reverts the whole change" in body
    assert world.workloads(pull.head) == world.expected_workloads(ga="0.1.2", canary="0.2.1")
    again = run_cycle(world.policy(), world.deps(), deliver=True)
    assert [(d.name, d.outcome) for d in again.deliveries] == [("images", "unchanged")]


def test_pull_request_a_person_closed_is_not_reopened_until_a_newer_tag(pr_world: World) -> None:
    world = pr_world
    ga_only(world)
    assert world.github is not None
    run_cycle(world.policy(), world.deps(), deliver=True)
    (refused,) = pulls(world)
    world.github.close(refused.number)

    skipped = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [(d.name, d.outcome) for d in skipped.deliveries] == [("podinfo-ga", "skipped")]
    assert skipped.deliveries[0].ref.endswith(f"/pull/{refused.number}")
    assert [d.outcome for d in run_cycle(world.policy(), world.deps(), deliver=True).deliveries] == ["skipped"]
    assert [(p.number, p.state) for p in pulls(world)] == [(refused.number, "closed")]
    assert world.github.comments_on(refused.number) == []

    # A newer tag is a different plan: it gets a fresh pull request.
    world.push_tags("0.1.3")
    newer = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in newer.deliveries] == ["opened"]
    (fresh,) = pulls(world, "open")
    assert fresh.number != refused.number
    assert fresh.title == f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.3"
    assert plan_id_in(fresh.body or "") == newer.plans[0].plan_id != plan_id_in(refused.body or "")
    assert world.workloads(GA_BRANCH) == world.expected_workloads(ga="0.1.3")


def test_pull_request_the_bot_closed_is_opened_again_when_needed_again(pr_world: World) -> None:
    world = pr_world
    ga_only(world)
    assert world.github is not None
    first = run_cycle(world.policy(), world.deps(), deliver=True)
    (pull,) = pulls(world)
    # Someone sets the tag by hand (the bot closes its pull request), then takes that back.
    hand = world.git.commit_as_other(world.repo, {WORKLOADS: world.expected_workloads(ga="0.1.2")}, "ga 0.1.2")
    assert [d.outcome for d in run_cycle(world.policy(), world.deps(), deliver=True).deliveries] == ["closed"]
    assert plan_id_in(world.github.pulls[pull.number].body or "") is None
    person_reverts(world, str(hand))

    again = run_cycle(world.policy(), world.deps(), deliver=True)

    assert again.plans[0].plan_id == first.plans[0].plan_id
    assert [d.outcome for d in again.deliveries] == ["opened"]
    (reopened,) = pulls(world, "open")
    assert reopened.number != pull.number


def test_plan_diff_in_pull_request_mode_shows_each_pull_request_against_the_branch(pr_world: World) -> None:
    # Both images live in one file; each pull request starts from the branch, so each diff must too.
    world = pr_world
    result = run_cycle(world.policy(), world.deps(), deliver=False)

    assert [p.name for p in result.plans] == ["podinfo-ga", "podinfo-canary"]
    removed = [line for line in result.diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == [
        f"-          image: {world.image}:0.1.0   # GA",
        f'-          image: "{world.image}:0.2.0"',
    ]
    assert f"+          image: {world.image}:0.1.2   # GA" in result.diff.splitlines()


def merged_ga_update(world: World) -> str:
    """The GA update's pull request, merged by fast-forward; returns the merged sha."""
    assert world.github is not None
    ga_only(world)
    run_cycle(world.policy(), world.deps(), deliver=True)
    (pull,) = pulls(world)
    sha = world.git.head(world.repo, GA_BRANCH)
    assert sha is not None
    world.git.git(world.repo, "update-ref", "refs/heads/main", sha)
    world.github.merge(pull.number, sha)
    return sha


def test_rollback_run_again_reports_its_open_pull_request(pr_world: World) -> None:
    world = pr_world
    merged_ga_update(world)
    branch = f"gitbot/{POLICY}/rollback-podinfo-ga"
    first = rollback(world.policy(), world.deps(), "podinfo-ga")
    proposed = world.git.head(world.repo, branch)
    (pull,) = pulls(world, "open")

    again = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert (again.outcome, again.ref) == ("unchanged", first.ref)
    assert again.subject == f"already proposed in {first.ref}: {pull.title}"
    assert pulls(world, "open") == [pull] and world.git.head(world.repo, branch) == proposed


def test_rollback_killed_after_its_branch_landed_opens_one_pull_request_when_run_again(pr_world: World) -> None:
    world = pr_world
    merged = merged_ga_update(world)
    branch = f"gitbot/{POLICY}/rollback-podinfo-ga"

    with pytest.raises(Killed):
        rollback(world.policy(), killed_after_push(world.deps()), "podinfo-ga")
    assert world.git.head(world.repo, branch) is not None and pulls(world, "open") == []

    again = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert again.outcome == "opened"
    (pull,) = pulls(world, "open")
    assert pull.head == branch and again.ref.endswith(f"/pull/{pull.number}")
    assert world.git.git(world.repo, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert f"This reverts commit {merged}." in world.git.message(world.repo, branch)
    assert rollback(world.policy(), world.deps(), "podinfo-ga").outcome == "unchanged"
    assert len(pulls(world)) == 2  # the merged update and the one rollback


def test_rollback_run_again_after_its_pull_request_merged_names_the_revert(pr_world: World) -> None:
    world = pr_world
    assert world.github is not None
    merged_ga_update(world)
    rollback(world.policy(), world.deps(), "podinfo-ga")
    (pull,) = pulls(world, "open")
    revert = world.git.head(world.repo, pull.head)
    assert revert is not None
    world.git.git(world.repo, "update-ref", "refs/heads/main", revert)
    world.github.merge(pull.number, revert)

    again = rollback(world.policy(), world.deps(), "podinfo-ga")

    assert (again.outcome, again.ref) == ("unchanged", revert)
    assert again.subject.startswith(f"already rolled back by {revert[:7]}: gitbot({POLICY}): roll back podinfo-ga")
    assert pulls(world, "open") == [] and world.git.head(world.repo) == revert
    assert world.workloads() == world.expected_workloads(ga="0.1.0")
