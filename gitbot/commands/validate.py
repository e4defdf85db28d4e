"""`gitbot validate`: load every policy in a directory and print one line per policy; nothing is delivered.

A policy that does not load stops the command with the ConfigError's one line (exit 2) through the CLI.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from gitbot.config import Policy, load_policies


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


@click.command()
@click.option(
    "--policies",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("policies"),
    show_default=True,
    help="Directory of policy files (*.yaml).",
)
def validate(directory: Path) -> None:
    """Check every policy in a directory and print what each one manages."""
    policies = load_policies(directory)
    for policy in policies:
        click.echo(describe(policy))
    click.echo(f"{len(policies)} policies valid")
