"""`gitbot validate`: load every policy in a directory and print one line per policy; nothing is delivered.

A policy that does not load stops the command with the ConfigError's one line (exit 2) through the CLI.
With `--check-manifests` each policy also runs one cycle that stops after planning (a fresh checkout, the
registry's tags, the bindings of its images), so targets that bind nothing are reported before `gitbot run`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from gitbot.commands.compose import build_deps
from gitbot.commands.envcheck import require_variables
from gitbot.config import Policy, load_policies
from gitbot.cycle import run_cycle
from gitbot.errors import ConfigError, GitbotError, RegistryError
from gitbot.ports import Registry

# How many of an image's tags a warning about its filter shows.
_SOME_TAGS = 5


def format_duration(duration: timedelta) -> str:
    """`timedelta(minutes=90)` -> `1h30m`; fractions of a second are kept (`0.5s`)."""
    total = duration.total_seconds()
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = ""
    if hours:
        text += f"{int(hours)}h"
    if minutes:
        text += f"{int(minutes)}m"
    if seconds or not text:
        text += f"{seconds:g}s"
    return text


def describe_schedule(policy: Policy) -> str:
    schedule = policy.spec.schedule
    if schedule.cron is not None:
        text = f'cron "{schedule.cron}"'
    else:
        assert schedule.interval is not None
        text = f"every {format_duration(schedule.interval)}"
    if schedule.jitter is not None:
        text += f" (jitter {format_duration(schedule.jitter)})"
    return text


def describe(policy: Policy) -> str:
    """One line: name, delivery mode, images, canaries and schedule of `policy`."""
    spec = policy.spec
    images = ",".join(image.name for image in spec.images) or "-"
    canaries = ",".join(canary.name for canary in spec.canaries) or "-"
    return (
        f"{policy.name}: mode={spec.delivery.mode} images={images} canaries={canaries} "
        f"schedule={describe_schedule(policy)} file={policy.source}"
    )


def _policies(count: int) -> str:
    return f"{count} {'policy' if count == 1 else 'policies'}"


@click.command()
@click.option(
    "--policies",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("policies"),
    show_default=True,
    help="Directory of policy files (*.yaml).",
)
@click.option(
    "--check-manifests",
    is_flag=True,
    help="Also check out each policy's branch and bind its images and plan, delivering nothing.",
)
@click.option(
    "--skip-env",
    is_flag=True,
    help="Do not check that the environment variables the policies name are set (a check without secrets).",
)
def validate(directory: Path, check_manifests: bool, skip_env: bool) -> None:
    """Check every policy in a directory and print what each one manages."""
    policies = load_policies(directory)
    for policy in policies:
        click.echo(describe(policy))
        for warning in policy_warnings(policy):
            click.echo(f"gitbot: warning: {warning}", err=True)
    if not skip_env:
        require_variables(policies)
    click.echo(f"{_policies(len(policies))} valid")
    if check_manifests:
        check_policy_manifests(policies)


def policy_warnings(policy: Policy) -> list[str]:
    """What loads but will not judge as a person expects: a canary whose only latency check is a ratio to GA.

    At 100 percent GA takes no traffic, so a ratio is judged on GA's figures from before the step to 100
    percent, or is inconclusive when there are none; an absolute bound (`max`, milliseconds) always judges.
    """
    warnings = []
    for index, canary in enumerate(policy.spec.canaries):
        latency = [(i, c) for i, c in enumerate(canary.analysis.checks) if c.name == "latency-p99"]
        if latency and all(check.max is None for _, check in latency):
            first = latency[0][0]
            warnings.append(
                f"{policy.where(f'/spec/canaries/{index}/analysis/checks/{first}')}: canary {canary.name}'s only "
                "latency check is a ratio to GA (maxRatio); at 100% GA takes no traffic, so it is judged on GA's "
                "figures from before the step to 100% or is inconclusive; add max (milliseconds) for a bound "
                "that always judges"
            )
    return warnings


def check_policy_manifests(policies: list[Policy]) -> None:
    """One line per policy: its planned changes, or the error of its dry-run cycle; raise if any failed."""
    failures: list[GitbotError] = []
    for policy in policies:
        try:
            deps = build_deps(policy, need_forge=False)
            result = run_cycle(policy, deps, deliver=False)
        except GitbotError as exc:
            failures.append(exc)
            click.echo(f"{policy.name}: manifests: error: {exc.one_line()}", err=True)
            continue
        for problem in result.problems:
            if problem.blocks is None:
                click.echo(f"gitbot: warning: problem: {problem}", err=True)
        # An image or canary left out because of a file that cannot be read: the policy has not passed.
        left_out = [problem for problem in result.problems if problem.blocks is not None]
        for problem in left_out:
            click.echo(f"{policy.name}: manifests: error: {problem}", err=True)
        if left_out and not result.failures:
            failures.append(ConfigError(str(left_out[0])))
            continue
        if result.failures:
            # A tag lookup that failed leaves its image unchecked: the policy has not passed.
            for failure in result.failures:
                click.echo(f"{policy.name}: manifests: error: {failure.one_line()}", err=True)
            worst = max(result.failures, key=lambda failure: failure.exit_code)
            failures.append(ConfigError(worst.one_line()) if worst.exit_code == 2 else RegistryError(worst.one_line()))
            continue
        click.echo(f"{policy.name}: manifests bind; {len(result.plans)} planned change(s) at {result.head[:12]}")
        for warning in filter_warnings(policy, deps.registry):
            click.echo(f"gitbot: warning: {warning}", err=True)
    if failures:
        text = f"{len(failures)} of {_policies(len(policies))} failed the manifest check"
        # Configuration problems exit 2 (a registry that needs `insecure` too); anything remote (unreachable
        # registry or git) exits 1 and may pass later.
        raise ConfigError(text) if all(e.exit_code == 2 for e in failures) else GitbotError(text)
    count = len(policies)
    click.echo(f"{_policies(count)} {'binds its' if count == 1 else 'bind their'} manifests")


def filter_warnings(policy: Policy, registry: Registry) -> list[str]:
    """A line for each image whose filter matches none of its registry's tags: it would never move.

    The tag lists were just read by the cycle, so the registry client's cache answers again.
    """
    warnings = []
    for index, image in enumerate(policy.spec.images):
        try:
            tags = registry.list_tags(image.repository)
        except GitbotError:
            continue  # reported by the cycle already
        if not tags or any(policy.image_filter(index).matches(tag) for tag in tags):
            continue
        some = ", ".join(sorted(tags)[:_SOME_TAGS]) + (", ..." if len(tags) > _SOME_TAGS else "")
        warnings.append(
            f"{policy.where(f'/spec/images/{index}/filter')}: 0 of {len(tags)} tags of {image.repository} match "
            f"{image.filter!r} (some of its tags: {some})"
        )
    return warnings
