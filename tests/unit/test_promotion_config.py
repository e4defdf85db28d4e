"""The `promotion` field of an image policy: read with the policies it names, every mistake at its line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.commands.compose import UnreadableWorkspace, build_gate_workspaces
from gitbot.config import find_policy, load_policies
from gitbot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def policy_text(name: str, branch: str, image: str = "podinfo", promotion: str = "") -> str:
    gate = f"      promotion: {promotion}\n" if promotion else ""
    return (
        "apiVersion: gitbot.dev/v1alpha1\n"
        "kind: Policy\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  git: {{url: https://git.example/acme/config.git, branch: {branch}, paths: [clusters/{name}]}}\n"
        "  images:\n"
        f"    - name: {image}\n"
        "      repository: ghcr.io/stefanprodan/podinfo\n"
        '      filter: "0.2.*"\n'
        f"{gate}"
    )


def write_all(tmp_path: Path, **texts: str) -> Path:
    for name, text in texts.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_a_gate_is_read_with_the_policy_it_names(tmp_path: Path) -> None:
    directory = write_all(
        tmp_path,
        staging=policy_text("staging", "staging"),
        production=policy_text("production", "main", promotion="{after: staging/podinfo, soak: 2h}"),
    )

    by_name = {p.name: p for p in load_policies(directory)}

    gate = by_name["production"].spec.images[0].promotion
    assert gate is not None and (gate.policy, gate.image, gate.soak) == ("staging", "podinfo", timedelta(hours=2))
    assert list(by_name["production"].upstream) == ["staging"]
    assert by_name["production"].upstream["staging"].spec.git.branch == "staging"
    assert by_name["staging"].upstream == {}
    # Named by its file, the policy finds the policies its gates name in the directory.
    alone = find_policy(directory, str(directory / "production.yaml"))
    assert list(alone.upstream) == ["staging"]


def test_a_chain_of_gates_loads(tmp_path: Path) -> None:
    directory = write_all(
        tmp_path,
        dev=policy_text("dev", "dev"),
        staging=policy_text("staging", "staging", promotion="{after: dev/podinfo, soak: 30m}"),
        production=policy_text("production", "main", promotion="{after: staging/podinfo}"),
    )

    by_name = {p.name: p for p in load_policies(directory)}

    assert list(by_name["staging"].upstream) == ["dev"]
    assert list(by_name["production"].upstream) == ["staging"]
    gate = by_name["production"].spec.images[0].promotion
    assert gate is not None and gate.soak is None


@pytest.mark.parametrize(
    ("promotion", "needle"),
    [
        ("{after: qa/podinfo, soak: 2h}", "'qa/podinfo' names no loaded policy 'qa' (policies: production, staging)"),
        ("{after: staging/redis, soak: 2h}", "policy staging has no image 'redis' (images: podinfo)"),
        ("{after: production/podinfo}", "names this policy"),
        ("{after: staging, soak: 2h}", "expected <policy>/<image>"),
        ("{after: staging/podinfo, soak: soon}", "expected a duration"),
        ("{after: staging/podinfo, soke: 2h}", "is not a known field"),
    ],
)
def test_a_gate_mistake_is_an_error_at_its_line(tmp_path: Path, promotion: str, needle: str) -> None:
    directory = write_all(
        tmp_path,
        staging=policy_text("staging", "staging"),
        production=policy_text("production", "main", promotion=promotion),
    )

    with pytest.raises(ConfigError) as caught:
        load_policies(directory)

    assert needle in caught.value.one_line()
    assert f"{directory / 'production.yaml'}:10" in caught.value.one_line()
    assert "promotion" in caught.value.one_line()


def test_gates_that_lead_back_are_refused(tmp_path: Path) -> None:
    directory = write_all(
        tmp_path,
        staging=policy_text("staging", "staging", promotion="{after: production/podinfo}"),
        production=policy_text("production", "main", promotion="{after: staging/podinfo}"),
    )

    with pytest.raises(ConfigError, match="the gates of staging lead back to production"):
        load_policies(directory)


def test_the_shipped_production_policy_gates_its_canary_on_staging() -> None:
    by_name = {p.name: p for p in load_policies(REPO / "policies")}
    production = by_name["production"]
    gates = {image.name: image.promotion for image in production.spec.images if image.promotion}
    assert {name: gate.after for name, gate in gates.items()} == {"podinfo-canary": "staging/podinfo"}
    assert list(production.upstream) == ["staging"]


def test_the_composition_root_reads_another_branch_through_its_own_workspace(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    same_branch = policy_text("qa", "main")
    staging = policy_text("staging", "staging").replace("paths:", "tokenEnv: STAGING_TOKEN, paths:")
    directory = write_all(
        policies,
        qa=same_branch,
        staging=staging,
        production=policy_text("production", "main", promotion="{after: staging/podinfo}"),
        hotfix=policy_text("hotfix", "main", image="podinfo", promotion="{after: qa/podinfo}"),
    )
    by_name = {p.name: p for p in load_policies(directory)}
    env = {"GITBOT_CACHE_DIR": str(tmp_path / "cache")}

    # The branch of the policy itself needs no second workspace: its own checkout holds that history.
    assert build_gate_workspaces(by_name["hotfix"], env) == {}
    # A token that is not set makes the gate unreadable (it holds and says why); the cycle still runs.
    (unreadable,) = build_gate_workspaces(by_name["production"], env).values()
    assert isinstance(unreadable, UnreadableWorkspace)
    with pytest.raises(ConfigError, match="STAGING_TOKEN"), unreadable.checkout():
        pass
    (workspace,) = build_gate_workspaces(by_name["production"], {**env, "STAGING_TOKEN": "t0ken"}).values()
    assert isinstance(workspace, GitWorkspace)
    assert (workspace.branch, workspace.cache_dir) == ("staging", tmp_path / "cache" / "git")
