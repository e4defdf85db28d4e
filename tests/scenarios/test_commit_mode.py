"""Commit mode, whole cycles: new tags become one commit per image (or one for all), byte-exact, with the
trailers history reads back; a second cycle has nothing to do; a concurrent push is kept, never forced."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gitbot.adapters.gitrepo import GitCheckout, GitWorkspace
from gitbot.cycle import Deps, run_cycle
from gitbot.errors import GitAuthError, RegistryError
from tests.scenarios.conftest import POLICY, ROUTING, ROUTING_TEXT, WORKLOADS, World, image_yaml

pytestmark = pytest.mark.real

TRAILER_KEYS = ("Gitbot-Policy", "Gitbot-Action", "Gitbot-Target", "Gitbot-From", "Gitbot-To", "Gitbot-Plan-Id")


def trailers(message: str) -> dict[str, str]:
    block = message.strip().split("\n\n")[-1]
    return dict(line.split(": ", 1) for line in block.splitlines())


def test_new_tags_make_one_commit_per_image_changing_only_the_tag(world: World) -> None:
    seed = world.git.head(world.repo)
    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert [d.outcome for d in result.deliveries] == ["committed", "committed"]
    log = world.git.log(world.repo)
    assert [c.subject for c in log[:2]] == [
        f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1",
        f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2",
    ]
    assert log[2].sha == seed
    assert [d.ref for d in result.deliveries] == [log[1].sha, log[0].sha]
    assert all(c.author_name == "gitbot" and c.author_email == "gitbot@acme.example" for c in log[:2])

    ga = trailers(world.git.message(world.repo, log[1].sha))
    assert tuple(ga) == TRAILER_KEYS
    assert ga["Gitbot-Policy"] == POLICY
    assert ga["Gitbot-Action"] == "image-update"
    assert (ga["Gitbot-Target"], ga["Gitbot-From"], ga["Gitbot-To"]) == ("podinfo-ga", "0.1.0", "0.1.2")
    assert ga["Gitbot-Plan-Id"] == result.plans[0].plan_id

    # Byte-exact: each commit changes the one tag and nothing else (comments, quotes, flow maps stay).
    assert world.workloads(log[1].sha) == world.expected_workloads(ga="0.1.2")
    assert world.workloads() == world.expected_workloads(ga="0.1.2", canary="0.2.1")
    assert world.git.read_file(world.repo, ROUTING) == ROUTING_TEXT
    changed = world.git.git(world.repo, "diff", "--name-only", seed, "main").split()
    assert changed == [WORKLOADS]


def test_second_cycle_has_nothing_to_do(world: World) -> None:
    run_cycle(world.policy(), world.deps(), deliver=True)
    head = world.git.head(world.repo)

    again = run_cycle(world.policy(), world.deps(), deliver=True)

    assert again.plans == () and again.deliveries == ()
    assert again.head == head == world.git.head(world.repo)


def test_a_restarted_bot_reads_unchanged_manifests_from_its_scan_cache(world: World) -> None:
    run_cycle(world.policy(), world.deps(), deliver=True)  # commits: the workloads file is a new blob now
    run_cycle(world.policy(), world.deps(), deliver=True)
    # A new process: fresh adapters and caches, only the cache directory carries over.
    deps = world.deps()
    assert deps.scan_cache is not None
    run_cycle(world.policy(), deps, deliver=True)
    assert (deps.scan_cache.hits, deps.scan_cache.misses) == (2, 0)
    assert deps.scan_cache.directory is not None
    assert (deps.scan_cache.directory / "scan-cache.json").is_file()


def test_group_all_makes_one_commit_for_every_image(world: World) -> None:
    world.write_policy(group="all")
    seed = world.git.head(world.repo)

    result = run_cycle(world.policy(), world.deps(), deliver=True)

    assert len(result.deliveries) == 1
    log = world.git.log(world.repo)
    assert log[1].sha == seed
    assert log[0].subject == f"gitbot({POLICY}): update 2 images (podinfo-ga 0.1.2, podinfo-canary 0.2.1)"
    message = world.git.message(world.repo)
    targets = [line for line in message.splitlines() if line.startswith("Gitbot-Target: ")]
    assert targets == ["Gitbot-Target: podinfo-ga", "Gitbot-Target: podinfo-canary"]
    assert world.workloads() == world.expected_workloads(ga="0.1.2", canary="0.2.1")


class RacingWorkspace:
    """The real workspace, but the first push of a cycle is preceded by another person's push."""

    def __init__(self, inner: GitWorkspace, race: object) -> None:
        self.inner = inner
        self.race = race
        self.raced = 0

    @contextmanager
    def checkout(self) -> Iterator[GitCheckout]:
        with self.inner.checkout() as checkout:
            real_push = checkout.push

            def push() -> None:
                if not self.raced:
                    self.raced += 1
                    assert callable(self.race)
                    self.race()
                real_push()

            checkout.push = push  # type: ignore[method-assign]
            yield checkout


def test_push_race_replans_from_the_new_head_and_keeps_the_persons_commit(world: World) -> None:
    person_text = world.expected_workloads().replace("replicas: 2", "replicas: 5")
    shas: list[str] = []

    def race() -> None:
        shas.append(world.git.commit_as_other(world.repo, {WORKLOADS: person_text}, "Scale podinfo-ga to 5"))

    deps = world.deps()
    assert isinstance(deps.workspace, GitWorkspace)
    racing = RacingWorkspace(deps.workspace, race)
    result = run_cycle(world.policy(), Deps(racing, deps.registry, deps.clock, deps.forge), deliver=True)

    assert racing.raced == 1 and result.attempts == 2
    log = world.git.log(world.repo)
    # The bot's commits sit on top of the person's commit: nothing was forced over it.
    assert [c.sha for c in log[2:3]] == shas
    assert log[2].author_name == "Other Person"
    assert world.git.git(world.repo, "merge-base", "--is-ancestor", shas[0], "main") == ""
    assert world.workloads() == person_text.replace(":0.1.0", ":0.1.2").replace(":0.2.0", ":0.2.1")
    assert [d.ref for d in result.deliveries] == [log[1].sha, log[0].sha]


def test_wrong_token_fails_with_one_clear_line_without_the_token(world: World) -> None:
    wrong = "wrong-token-5d1c7e"
    world.env["GITBOT_GIT_TOKEN"] = wrong
    head = world.git.head(world.repo)

    with pytest.raises(GitAuthError) as caught:
        run_cycle(world.policy(), world.deps(), deliver=True)

    line = caught.value.one_line()
    assert "\n" not in line
    assert "credentials" in line and world.url in line
    assert wrong not in line and wrong not in str(caught.value.hint)
    assert world.git.head(world.repo) == head


def test_no_credential_is_stored_in_the_clone_cache_or_the_commits(world: World) -> None:
    run_cycle(world.policy(), world.deps(), deliver=True)

    token = world.env["GITBOT_GIT_TOKEN"].encode()
    header = base64.b64encode(f"{world.git.username}:{world.env['GITBOT_GIT_TOKEN']}".encode())
    cache = world.tmp / "cache"
    files = [path for path in cache.rglob("*") if path.is_file()]
    assert any(path.name == "config" for path in files)
    for path in files:
        data = path.read_bytes()
        assert token not in data and header not in data, path
    for commit in world.git.log(world.repo):
        assert world.env["GITBOT_GIT_TOKEN"] not in world.git.message(world.repo, commit.sha)


def test_image_repository_missing_from_the_registry_is_one_line_and_changes_nothing(world: World) -> None:
    world.write_policy(
        images=image_yaml(
            f"{world.registry.host}/nobody/nothing", "podinfo-ga", "0.1.*", "Deployment/test/podinfo-ga", "podinfod"
        )
    )
    head = world.git.head(world.repo)

    with pytest.raises(RegistryError) as caught:
        run_cycle(world.policy(), world.deps(), deliver=True)

    line = caught.value.one_line()
    assert "nobody/nothing" in line and world.registry.host in line and "\n" not in line
    assert world.git.head(world.repo) == head
