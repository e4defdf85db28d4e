"""Promotion gates, whole cycles against the real git server, registry and GitHub fake: environments on their
own branches of one repository (staging commits, production opens pull requests), and a tag reaches the later
environment only after it ran in the earlier one for the soak, without a rollback there."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gitbot.commands.compose import build_deps
from gitbot.config import Policy, load_policies
from gitbot.cycle import CycleResult, run_cycle
from gitbot.demo.builtin import ManualClock
from gitbot.manual import status
from tests.scenarios.conftest import PATH, World, WorldFactory, person_reverts
from tests.scenarios.test_cli import gitbot
from tests.support.github_fake import GitHubFake

pytestmark = pytest.mark.real


def policy_yaml(world: World, name: str, branch: str, *, mode: str = "commit", gate: str = "") -> str:
    github = ""
    if mode == "pull-request":
        assert world.github is not None
        github = (
            f"    github: {{repository: acme/cluster-config, tokenEnv: GITHUB_TOKEN, "
            f'apiUrl: "{world.github.base_url}"}}\n'
        )
    promotion = f"      promotion: {gate}\n" if gate else ""
    return (
        "apiVersion: gitbot.dev/v1alpha1\n"
        "kind: Policy\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        "  git:\n"
        f"    url: {world.url}\n"
        f"    branch: {branch}\n"
        f"    paths: [{PATH}]\n"
        "    tokenEnv: GITBOT_GIT_TOKEN\n"
        "    username: gitbot\n"
        "    author: {name: gitbot, email: gitbot@acme.example}\n"
        "  delivery:\n"
        f"    mode: {mode}\n"
        f"{github}"
        f'  registries: [{{host: "{world.registry.host}", insecure: true}}]\n'
        "  images:\n"
        "    - name: podinfo-ga\n"
        f"      repository: {world.image}\n"
        '      filter: "0.1.*"\n'
        "      targets: [{resource: Deployment/test/podinfo-ga, container: podinfod}]\n"
        f"{promotion}"
    )


class Environments:
    """The policies of one world, each on its own branch, loaded together as the commands load them."""

    def __init__(self, world: World, texts: dict[str, str]) -> None:
        self.world = world
        self.dir = world.tmp / "policies"
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (self.dir / f"{name}.yaml").write_text(text, encoding="utf-8")
        for branch in {self.policy(name).spec.git.branch for name in texts} - {"main"}:
            world.git.git(world.repo, "branch", branch, "main")

    def policy(self, name: str) -> Policy:
        return next(p for p in load_policies(self.dir) if p.name == name)

    def cycle(self, name: str, now: datetime | None = None) -> CycleResult:
        policy = self.policy(name)
        deps = build_deps(policy, need_forge=True, env=self.world.env, throttle=False)
        if now is not None:
            deps = replace(deps, clock=ManualClock(now))
        return run_cycle(policy, deps, deliver=True)

    def status(self, name: str, now: datetime) -> dict[str, tuple[str | None, tuple[tuple[str, str], ...]]]:
        policy = self.policy(name)
        deps = replace(build_deps(policy, need_forge=True, env=self.world.env, throttle=False), clock=ManualClock(now))
        return {image.name: (image.newest, image.held) for image in status(policy, deps).images}

    def landed(self, branch: str) -> tuple[str, datetime]:
        """The sha and committer time of the head of `branch` (the bot commits fast-forward there)."""
        sha, when = self.world.git.git(self.world.repo, "log", "-1", "--format=%H %cI", branch).split()
        return sha, datetime.fromisoformat(when)


def ga(world: World, branch: str) -> str:
    text = world.workloads(branch)
    line = next(row for row in text.splitlines() if "# GA" in row)
    return line.split(":")[-1].split()[0]


@pytest.fixture
def promo_world(make_world: WorldFactory, github_fake: GitHubFake, request: pytest.FixtureRequest) -> World:
    slug = request.node.name.replace("_", "-").lower()[:40].strip("-")
    return make_world(image_repo=f"promo/{slug}", github=github_fake, tags=("0.1.0", "0.1.1", "0.1.2"))


def staging_and_production(world: World, soak: str = "2h") -> Environments:
    return Environments(
        world,
        {
            "staging": policy_yaml(world, "staging", "staging"),
            "production": policy_yaml(
                world, "production", "main", mode="pull-request", gate=f"{{after: staging/podinfo-ga, soak: {soak}}}"
            ),
        },
    )


def test_a_tag_reaches_production_only_after_it_soaked_in_staging(promo_world: World) -> None:
    world = promo_world
    envs = staging_and_production(world)

    # Production first: staging never ran anything, so nothing is proposed.
    early = envs.cycle("production")
    assert early.plans == () and world.github is not None and world.github.list_pulls() == []

    staged = envs.cycle("staging")
    assert [d.outcome for d in staged.deliveries] == ["committed"]
    assert ga(world, "staging") == "0.1.2"
    sha, landed = envs.landed("staging")

    held = envs.cycle("production", now=landed + timedelta(hours=1))
    assert held.plans == () and world.github.list_pulls() == []
    newest, held_back = envs.status("production", landed + timedelta(hours=1))["podinfo-ga"]
    assert newest == "0.1.0", "the tag it runs stays the newest allowed"
    assert held_back[0] == ("0.1.2", f"soak left 1h in staging (there since {_utc(landed)}, needs 2h)")
    assert ("0.1.1", "not yet in staging") in held_back

    promoted = envs.cycle("production", now=landed + timedelta(hours=5))
    assert [(d.name, d.outcome) for d in promoted.deliveries] == [("podinfo-ga", "opened")]
    (pull,) = world.github.list_pulls()
    assert pull.title == "gitbot(production): podinfo-ga 0.1.0 -> 0.1.2"
    evidence = f"0.1.2 has run in staging since {_utc(landed)} (5h), no rollback (commit {sha[:7]})"
    assert evidence in (pull.body or "")
    assert ga(world, "main") == "0.1.0", "pull-request mode leaves production's branch to the merge"
    assert envs.status("production", landed + timedelta(hours=5))["podinfo-ga"] == ("0.1.2", ())


def test_a_tag_rolled_back_in_staging_never_reaches_production(promo_world: World) -> None:
    world = promo_world
    envs = staging_and_production(world, soak="1h")
    envs.cycle("staging")
    bad, landed = envs.landed("staging")
    revert = person_reverts(world, bad, branch="staging")
    assert ga(world, "staging") == "0.1.0"

    later = landed + timedelta(days=1)
    held = envs.cycle("production", now=later)

    assert held.plans == ()
    _newest, held_back = envs.status("production", later)["podinfo-ga"]
    assert held_back[0][0] == "0.1.2"
    assert held_back[0][1].startswith(f"rolled back in staging: reverted by {revert[:7]}")

    # A newer tag staging runs without a rollback goes on; 0.1.2 is never proposed.
    world.push_tags("0.1.3")
    envs.cycle("staging")
    good, landed = envs.landed("staging")
    assert ga(world, "staging") == "0.1.3"
    promoted = envs.cycle("production", now=landed + timedelta(hours=2))
    assert [p.subject for p in promoted.plans] == ["gitbot(production): podinfo-ga 0.1.0 -> 0.1.3"]
    assert f"(commit {good[:7]})" in promoted.plans[0].evidence


def test_a_chain_of_three_environments_moves_a_tag_one_gate_at_a_time(promo_world: World) -> None:
    world = promo_world
    envs = Environments(
        world,
        {
            "dev": policy_yaml(world, "dev", "dev"),
            "staging": policy_yaml(world, "staging", "staging", gate="{after: dev/podinfo-ga, soak: 1h}"),
            "production": policy_yaml(
                world, "production", "main", mode="pull-request", gate="{after: staging/podinfo-ga, soak: 1h}"
            ),
        },
    )
    envs.cycle("dev")
    _sha, in_dev = envs.landed("dev")
    assert ga(world, "dev") == "0.1.2"

    # Within dev's soak staging holds; production, gated on staging, sees nothing yet in staging.
    assert envs.cycle("staging", now=in_dev + timedelta(minutes=30)).plans == ()
    assert envs.cycle("production", now=in_dev + timedelta(hours=3)).plans == ()
    _newest, held_back = envs.status("production", in_dev + timedelta(hours=3))["podinfo-ga"]
    assert held_back[0] == ("0.1.2", "not yet in staging")

    assert [d.outcome for d in envs.cycle("staging", now=in_dev + timedelta(hours=2)).deliveries] == ["committed"]
    assert ga(world, "staging") == "0.1.2"
    staging_sha, in_staging = envs.landed("staging")
    staging_commit = world.git.message(world.repo, "staging")
    assert "Promotion gate dev/podinfo-ga: 0.1.2 has run in dev since" in staging_commit

    assert envs.cycle("production", now=in_staging + timedelta(minutes=20)).plans == ()
    promoted = envs.cycle("production", now=in_staging + timedelta(hours=1))
    assert [p.subject for p in promoted.plans] == ["gitbot(production): podinfo-ga 0.1.0 -> 0.1.2"]
    assert f"has run in staging since {_utc(in_staging)} (1h), no rollback (commit {staging_sha[:7]})" in (
        promoted.plans[0].evidence
    )


def test_a_gate_whose_environment_cannot_be_read_holds_and_says_why(promo_world: World) -> None:
    world = promo_world
    envs = staging_and_production(world, soak="1h")
    envs.cycle("staging")
    _sha, landed = envs.landed("staging")
    # The staging branch is gone (renamed away): production cannot read where its tags must have run.
    world.git.git(world.repo, "branch", "-m", "staging", "staging-old")

    later = landed + timedelta(days=1)
    result = envs.cycle("production", now=later)

    assert result.plans == () and result.deliveries == ()
    assert world.github is not None and world.github.list_pulls() == []
    _newest, held_back = envs.status("production", later)["podinfo-ga"]
    assert held_back and all(why.startswith("staging cannot be read (branch staging: ") for _tag, why in held_back)
    assert all(why.endswith("; holding") for _tag, why in held_back)


def test_status_prints_what_holds_each_newer_tag_back(promo_world: World) -> None:
    world = promo_world
    envs = staging_and_production(world)
    envs.cycle("staging")

    done = gitbot(world, "status", "--policy", "production", "--policies", str(envs.dir))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "  podinfo-ga: running 0.1.0; newest allowed 0.1.0" in lines
    held = [line for line in lines if line.startswith("    held back ")]
    assert re.fullmatch(
        r"    held back 0\.1\.2: soak left 1h5\dm in staging \(there since [-0-9: ]+Z, needs 2h\)", held[0]
    )
    assert held[1:] == ["    held back 0.1.1: not yet in staging"]


def _utc(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M}Z"
