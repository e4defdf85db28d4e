"""A change counts from when it landed on the environment branch, not from its commit date.

The canary-image pull request is opened at minute 0.5; while it is open the cycle proposes no step (one
merged first would send traffic to the old image), so a person steps the canary to 10 % by hand, merged
at minute 1 (GitHub's "Rebase and merge": committed anew). At 13.5 the next step still waits for the image,
and a person merges the image pull request at 14, its commit still dated 0.5. The dwell restarts from the
merge, not from the commit's date.
"""

from __future__ import annotations

from typing import Literal

import pytest

from gitbot.manual import promote
from tests.scenarios_canary.conftest import CANARY_TAG, POLICY, World, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import action, at, trailers
from tests.scenarios_canary.test_pull_requests import delivered, open_pulls, rev
from tests.support.github_fake import FakePull, GitHubFake

Style = Literal["merge", "squash", "rebase"]
PERSON = {"GIT_AUTHOR_NAME": "Pat Person", "GIT_AUTHOR_EMAIL": "pat@example.test"}
FORGE = {"GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.test"}


def dated(at_minute: float) -> dict[str, str]:
    stamp = f"@{int(minute(at_minute).timestamp())} +0000"
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


def merge_on_website(world: World, pull: FakePull, style: Style, at_minute: float) -> str:
    """A person merges `pull` on the website at minute `at_minute`, as GitHub does for `style`."""
    assert world.github is not None
    git = world.server.git
    head, main = rev(world, pull.head), rev(world, "main")
    tree = git(world.repo, "merge-tree", "--write-tree", main, head).split()[0]
    message = git(world.repo, "log", "-1", "--format=%B", head)
    if style == "merge":
        env = PERSON | FORGE | dated(at_minute)
        text = f"Merge pull request #{pull.number} from acme/{pull.head}\n\n{pull.title}\n"
        sha = git(world.repo, "commit-tree", tree, "-p", main, "-p", head, input_text=text, env=env).strip()
    else:
        subject, _, body = message.partition("\n\n")
        text = f"{subject} (#{pull.number})\n\n{body}" if style == "squash" else message
        # Rebasing keeps the author and their date; squashing credits the person who merged.
        author = (
            PERSON | {"GIT_AUTHOR_DATE": dated(at_minute)["GIT_AUTHOR_DATE"]}
            if style == "squash"
            else {
                "GIT_AUTHOR_NAME": git(world.repo, "log", "-1", "--format=%an", head).strip(),
                "GIT_AUTHOR_EMAIL": git(world.repo, "log", "-1", "--format=%ae", head).strip(),
                "GIT_AUTHOR_DATE": git(world.repo, "log", "-1", "--format=%aI", head).strip(),
            }
        )
        env = author | FORGE | {"GIT_COMMITTER_DATE": dated(at_minute)["GIT_COMMITTER_DATE"]}
        sha = git(world.repo, "commit-tree", tree, "-p", main, input_text=text, env=env).strip()
    git(world.repo, "update-ref", "refs/heads/main", sha, main)
    world.github.merge(pull.number, sha)
    return sha


def committed_minute(world: World, ref: str) -> float:
    seconds = int(world.server.git(world.repo, "log", "-1", "--format=%ct", ref))
    return (seconds - minute(0).timestamp()) / 60


def titled(world: World, title: str) -> FakePull:
    (pull,) = [p for p in open_pulls(world) if p.title == title]
    return pull


@pytest.mark.parametrize("style", ["merge", "squash", "rebase"])
def test_a_canary_image_merged_while_a_step_is_open_restarts_the_dwell(
    make_world: WorldFactory, github_fake: GitHubFake, style: Style
) -> None:
    # The image change alone, as `continue` keeps it: with the default `restart` it would also set the weights
    # back to 0, which is a different story (tests/scenarios_canary/test_new_image.py).
    world = make_world("healthy", github=github_fake, on_complete="hold\n      onNewImage: continue")
    world.push_tags("0.2.2")
    first = world.cycle(0.5)
    assert delivered(first) == [("podinfo-canary", "opened")]
    image_pull = titled(world, f"gitbot({POLICY}): podinfo-canary {CANARY_TAG} -> 0.2.2")
    waits = f"canary image podinfo-canary {CANARY_TAG} -> 0.2.2 is proposed in a pull request; the next step waits"
    assert (first.canaries[0].held or "").startswith(waits)
    world.clock.set(minute(0.75))
    by_hand = promote(world.policy, world.deps, "podinfo")
    assert by_hand.outcome == "opened"
    step10 = merge_on_website(world, titled(world, f"gitbot({POLICY}): podinfo canary 0% -> 10%"), "rebase", 1)
    assert committed_minute(world, step10) == 1 and weights(world.routes_text()) == at(10)

    # The dwell at 10 % ran from minute 3 (the share matched); the step waits for the image to land.
    proposed = world.cycle(13.5)
    assert delivered(proposed) == [("podinfo-canary", "unchanged")]
    assert (proposed.canaries[0].held or "").startswith(waits)
    # The image pull request's commit is older than the step on the branch.
    assert committed_minute(world, image_pull.head) == 0.5

    landed = merge_on_website(world, image_pull, style, 14)
    assert ("Gitbot-To", "0.2.2") in trailers(
        world.server.message(world.repo, landed if style != "merge" else "main^2")
    )

    after = world.cycle(14.5)
    assert action(after) == "hold"
    assert after.canaries[0].decision is not None
    assert after.canaries[0].decision.reason == "new canary image, dwell restarted: 9m30s left"
    assert after.deliveries == ()
    assert open_pulls(world) == []
    assert weights(world.routes_text()) == at(10)
