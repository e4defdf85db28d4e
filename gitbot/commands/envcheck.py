"""The environment variables policies name, checked all at once before a command relies on any of them.

A cycle reads each variable only where it needs it (the Slack webhook when it notifies), so a missing one
would otherwise be found late, by the daemon, one at a time. This lists every one that is unset, each at
its line, and stops with exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import click

from gitbot.config import Policy, unset_variables
from gitbot.errors import ConfigError


def require_variables(policies: Iterable[Policy], env: Mapping[str, str] | None = None) -> None:
    """Print one error line per unset variable the policies name; ConfigError (exit 2) when there is any."""
    missing = [error for policy in policies for error in unset_variables(policy, os.environ if env is None else env)]
    for error in missing[:-1]:
        click.echo(f"gitbot: error: {error.one_line()}", err=True)
    if missing:
        last = missing[-1]
        raise ConfigError(last.message, where=last.where, hint="set each variable where gitbot runs")
