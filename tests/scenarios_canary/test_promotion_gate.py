"""A promotion gate on an environment whose canary judges the image, whole cycles over the real git server,
Prometheus and `docker-registry`: staging (its own branch) rolls a new canary tag out step by step, and
production (gated on staging's canary image) takes the tag only once staging's canary completed it after
the soak; a tag staging's canary rolled back never reaches production."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from gitbot.commands.compose import build_deps
from gitbot.config import Policy, load_policies
from gitbot.cycle import CycleResult, run_cycle
from gitbot.manual import status
from tests.scenarios_canary.conftest import APPS_FILE, POLICY, World, WorldFactory, minute, weights
from tests.scenarios_canary.test_progression import at

NEW_TAG = "0.2.2"


class Stages:
    """Staging (the world's canary policy, on branch `staging`) and production (its images only, on `main`,
    `podinfo-canary` gated on staging's), loaded together as the commands load them."""

    def __init__(self, world: World, tmp: Path, soak: str) -> None:
        assert world.policy_path is not None
        self.world = world
        text = world.policy_path.read_text(encoding="utf-8")
        staging = text.replace(f"  name: {POLICY}\n", "  name: staging\n", 1).replace(
            "    branch: main\n", "    branch: staging\n", 1
        )
        gate = f"      promotion: {{after: staging/podinfo-canary, soak: {soak}}}\n"
        production = text.split("  canaries:\n")[0].replace(
            '      filter: "0.2.*"\n', '      filter: "0.2.*"\n' + gate, 1
        )
        self.dir = tmp / "policies"
        self.dir.mkdir()
        (self.dir / "staging.yaml").write_text(staging, encoding="utf-8")
        (self.dir / f"{POLICY}.yaml").write_text(production, encoding="utf-8")
        world.server.git(world.repo, "branch", "staging", "main")
        self.env = {"SCENARIO_GIT_TOKEN": world.server.token, "GITBOT_CACHE_DIR": str(tmp / "cache")}

    def policy(self, name: str) -> Policy:
        return next(p for p in load_policies(self.dir) if p.name == name)

    def cycle(self, name: str, at: float) -> CycleResult:
        """One delivered cycle of policy `name` at minute `at` of the data sets, as a freshly started bot."""
        self.world.clock.set(minute(at))
        policy = self.policy(name)
        deps = replace(build_deps(policy, need_forge=False, env=self.env), clock=self.world.clock)
        return run_cycle(policy, deps, deliver=True)

    def held(self, at: float) -> dict[str, str]:
        """What `gitbot status` says holds each newer tag of production's canary image back at minute `at`."""
        self.world.clock.set(minute(at))
        policy = self.policy(POLICY)
        deps = replace(build_deps(policy, need_forge=False, env=self.env), clock=self.world.clock)
        image = next(i for i in status(policy, deps).images if i.name == "podinfo-canary")
        return dict(image.held)

    def canary_tag(self, branch: str) -> str:
        apps = self.world.server.read_file(self.world.repo, APPS_FILE, branch)
        return apps.split("name: podinfo-canary")[1].split("image: ")[1].split("\n")[0].rsplit(":", 1)[1]


def test_a_tag_staging_s_canary_completed_reaches_production_after_the_soak(
    make_world: WorldFactory, tmp_path: Path
) -> None:
    world = make_world("healthy")
    stages = Stages(world, tmp_path, soak="10m")
    world.push_tags(NEW_TAG)

    assert [d.subject for d in stages.cycle("staging", 0).deliveries] == [
        f"gitbot(staging): podinfo-canary 0.2.1 -> {NEW_TAG}"
    ]
    for moment in (1, 14):
        assert stages.cycle("staging", moment).deliveries
    assert weights(world.routes_text("staging")) == at(60)

    # Past the soak, but staging's canary has not finished with the tag: production holds.
    assert stages.cycle(POLICY, 20).plans == ()
    assert stages.held(20)[NEW_TAG] == "canary podinfo in staging is at 60%, its rollout not complete"
    assert stages.canary_tag("main") == "0.2.1"

    assert [d.subject for d in stages.cycle("staging", 27).deliveries] == [
        "gitbot(staging): podinfo canary 60% -> 100%"
    ]
    completed = world.server.log(world.repo, "staging")[0].sha

    promoted = stages.cycle(POLICY, 30)
    assert [d.subject for d in promoted.deliveries] == [f"gitbot({POLICY}): podinfo-canary 0.2.1 -> {NEW_TAG}"]
    assert stages.canary_tag("main") == NEW_TAG
    message = world.server.message(world.repo)
    assert f"canary podinfo completed its steps (commit {completed[:7]})" in message
    assert "Promotion gate staging/podinfo-canary: 0.2.2 has run in staging since 2026-" in message


def test_a_tag_staging_s_canary_rolled_back_never_reaches_production(make_world: WorldFactory, tmp_path: Path) -> None:
    world = make_world("errors")
    stages = Stages(world, tmp_path, soak="5m")
    world.push_tags(NEW_TAG)
    stages.cycle("staging", 0)
    stages.cycle("staging", 1)
    assert weights(world.routes_text("staging")) == at(10)

    failed = stages.cycle("staging", 8)
    (rollback,) = failed.deliveries
    assert rollback.subject.startswith("gitbot(staging): roll back podinfo canary (success-rate 92 < 99")
    assert weights(world.routes_text("staging")) == at(0)
    # The rollback also returns staging's canary image to the tag it ran before; the bad one is quarantined there.
    assert stages.canary_tag("staging") == "0.2.1"

    # A day later the soak is long over; the tag is still held, and says why.
    later = (timedelta(days=1) + timedelta(minutes=8)).total_seconds() / 60
    assert stages.cycle(POLICY, later).plans == ()
    assert stages.canary_tag("main") == "0.2.1"
    assert stages.held(later)[NEW_TAG].startswith("rolled back in staging: ")
