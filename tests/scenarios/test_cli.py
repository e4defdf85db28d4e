"""The one-cycle commands as a person runs them: `python -m gitbot` subprocesses against the real servers,
with the tokens in the environment only; exit codes, what they print, one-line errors without secrets."""

from __future__ import annotations

import subprocess

import pytest

from tests.scenarios.conftest import POLICY, World
from tests.support.cli import cli_env, run_gitbot
from tests.support.gitserver import GitServer

pytestmark = pytest.mark.real


def gitbot(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gitbot ARGS` as a person runs it in the world, with its tokens in the environment only."""
    return run_gitbot(*args, env=cli_env(**world.env), cwd=world.tmp)


def policy_args(world: World) -> list[str]:
    if not world.policy_path.exists():
        world.write_policy()
    return ["--policy", POLICY, "--policies", str(world.policy_path.parent)]


def test_plan_prints_the_changes_and_a_diff_and_delivers_nothing(world: World) -> None:
    head = world.git.head(world.repo)

    done = gitbot(world, "plan", *policy_args(world), "--diff")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2  [plan " in out
    assert f"gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1  [plan " in out
    assert "--- a/clusters/production/podinfo.yaml" in out
    assert f"-          image: {world.image}:0.1.0   # GA\n+          image: {world.image}:0.1.2   # GA\n" in out
    assert f'-          image: "{world.image}:0.2.0"\n+          image: "{world.image}:0.2.1"\n' in out
    assert world.git.head(world.repo) == head
    assert world.env["GITBOT_GIT_TOKEN"] not in out + done.stderr


def test_once_commits_and_prints_the_shas_then_has_nothing_to_do(world: World) -> None:
    done = gitbot(world, "once", *policy_args(world))

    assert done.returncode == 0, done.stderr
    log = world.git.log(world.repo)
    assert done.stdout.splitlines() == [
        f"committed {log[1].sha}  gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2",
        f"committed {log[0].sha}  gitbot({POLICY}): podinfo-canary 0.2.0 -> 0.2.1",
    ]

    again = gitbot(world, "once", "--policy", str(world.policy_path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"{POLICY}: nothing to change at {log[0].sha[:12]}"


def test_rollback_and_status_commands(world: World) -> None:
    assert gitbot(world, "once", *policy_args(world)).returncode == 0

    rolled = gitbot(world, "rollback", "podinfo-ga", *policy_args(world))

    assert rolled.returncode == 0, rolled.stderr
    head = world.git.head(world.repo)
    assert rolled.stdout.strip() == f"committed {head}  gitbot({POLICY}): roll back podinfo-ga 0.1.2 -> 0.1.0"
    shown = gitbot(world, "status", *policy_args(world))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"policy {POLICY} at {str(head)[:12]}"
    assert "  podinfo-ga: running 0.1.0; newest allowed (none newer than a quarantined tag)" in lines
    assert any(line.startswith(f"    quarantined 0.1.2: rolled back by {str(head)[:7]}") for line in lines)
    assert "  podinfo-canary: running 0.2.1; newest allowed 0.2.1" in lines


def test_rollback_run_again_says_it_is_done_and_further_goes_one_change_back(world: World) -> None:
    assert gitbot(world, "once", *policy_args(world)).returncode == 0
    first = gitbot(world, "rollback", "podinfo-ga", *policy_args(world))
    assert first.returncode == 0, first.stderr
    head = world.git.head(world.repo)
    assert head is not None

    again = gitbot(world, "rollback", "podinfo-ga", *policy_args(world))

    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        f"already rolled back by {head[:7]}: gitbot({POLICY}): roll back podinfo-ga 0.1.2 -> 0.1.0"
    )
    assert world.git.head(world.repo) == head
    # Nothing older stands for GA: going further is refused with the usual one line.
    further = gitbot(world, "rollback", "podinfo-ga", "--further", *policy_args(world))
    assert further.returncode == 2 and "no standing gitbot change for 'podinfo-ga'" in further.stderr
    assert world.git.head(world.repo) == head


def test_a_token_pasted_into_the_git_url_never_reaches_output_or_the_cache(world: World) -> None:
    secret = "Zq7canaryS3cret0x5f"
    world.write_policy()
    text = world.policy_path.read_text(encoding="utf-8")
    assert world.url in text
    world.policy_path.write_text(text.replace(world.url, f"{world.url}?access_token={secret}"), encoding="utf-8")

    for command in ("once", "plan", "status"):
        done = gitbot(world, command, *policy_args(world))
        assert done.returncode == 2, done.stderr
        assert secret not in done.stdout + done.stderr
        assert "spec.git.url: the URL must not contain a password or token (it has a query)" in done.stderr
    validated = gitbot(world, "validate", "--policies", str(world.policy_path.parent))
    assert validated.returncode == 2 and secret not in validated.stdout + validated.stderr
    cache = world.tmp / "cache"
    held = [p for p in cache.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()] if cache.exists() else []
    assert held == []


def test_once_in_pull_request_mode_prints_the_url(pr_world: World) -> None:
    assert pr_world.github is not None
    done = gitbot(pr_world, "once", *policy_args(pr_world))

    assert done.returncode == 0, done.stderr
    pulls = {p.head: p for p in pr_world.github.list_pulls()}
    ga = pulls[f"gitbot/{POLICY}/podinfo-ga"]
    url = f"{pr_world.github.root_url}/{pr_world.github.full_name}/pull/{ga.number}"
    assert f"opened    {url}  gitbot({POLICY}): podinfo-ga 0.1.0 -> 0.1.2" in done.stdout.splitlines()
    assert pr_world.github.token not in done.stdout + done.stderr


def test_bad_policy_exits_2_with_one_line(world: World) -> None:
    world.write_policy()
    text = world.policy_path.read_text(encoding="utf-8").replace("    mode: commit\n", "    mode: comit\n")
    world.policy_path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    mode: comit") + 1

    done = gitbot(world, "once", *policy_args(world))

    assert done.returncode == 2
    assert done.stdout == ""
    (error,) = done.stderr.splitlines()
    assert error.startswith(f"gitbot: error: {world.policy_path}:{line}: spec.delivery.mode: must be one of")
    assert "'comit'" in error


def test_wrong_git_token_exits_2_without_the_token(world: World, git_server: GitServer) -> None:
    world.env["GITBOT_GIT_TOKEN"] = "not-the-token-93af01"
    head = world.git.head(world.repo)

    done = gitbot(world, "once", *policy_args(world))

    # Refused credentials are not a failure that retrying fixes: not exit 1.
    assert done.returncode == 2
    error, hint = done.stderr.splitlines()
    assert error.startswith("gitbot: error: git fetch refused the credentials for ")
    assert hint.startswith("gitbot: hint: ")
    assert "not-the-token-93af01" not in done.stdout + done.stderr
    assert world.git.head(world.repo) == head
    assert git_server.auth_failures > 0


def test_missing_token_variable_exits_2_naming_it(world: World) -> None:
    del world.env["GITBOT_GIT_TOKEN"]

    done = gitbot(world, "plan", *policy_args(world))

    assert done.returncode == 2
    (error,) = done.stderr.splitlines()
    assert "GITBOT_GIT_TOKEN" in error and "spec.git.tokenEnv" in error


def test_a_policy_path_missing_from_the_branch_is_a_one_line_policy_error(world: World) -> None:
    path = world.write_policy()
    text = path.read_text(encoding="utf-8")
    assert "    paths: [clusters/production]\n" in text
    path.write_text(text.replace("[clusters/production]", "[clusters/production, clusters/other]"), encoding="utf-8")
    line = text.splitlines().index("    paths: [clusters/production]") + 1
    head = str(world.git.head(world.repo))

    done = gitbot(world, "plan", *policy_args(world))

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"gitbot: error: {path}:{line}: spec.git.paths[1]: 'clusters/other' does not exist on branch main "
        f"(at {head[:12]}); fix the path or add it to the branch"
    ]


def test_status_in_pull_request_mode_lists_the_open_pull_requests(pr_world: World) -> None:
    assert pr_world.github is not None
    assert gitbot(pr_world, "once", *policy_args(pr_world)).returncode == 0

    shown = gitbot(pr_world, "status", *policy_args(pr_world))

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    # Nothing merged yet: the branch still runs the old tags, the pull requests propose the new ones.
    assert "  podinfo-ga: running 0.1.0; newest allowed 0.1.2" in lines
    for pull in pr_world.github.list_pulls():
        url = f"{pr_world.github.root_url}/{pr_world.github.full_name}/pull/{pull.number}"
        assert f"  open pull request #{pull.number} {url} {pull.title}" in lines
    assert len([line for line in lines if line.startswith("  open pull request #")]) == 2
    assert pr_world.github.token not in shown.stdout + shown.stderr


def test_once_starts_without_the_daemons_scheduler(world: World) -> None:
    assert gitbot(world, "once", *policy_args(world)).returncode == 0
    done = run_gitbot(
        "once", *policy_args(world), env=cli_env(**world.env), cwd=world.tmp, python_flags=("-X", "importtime")
    )

    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "gitbot.cycle" in imported
    # Its notices follow the daemon's rules, but a cycle by hand schedules nothing.
    assert not {name for name in imported if name.startswith(("apscheduler.schedulers", "gitbot.service"))}
