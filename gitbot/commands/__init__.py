"""The subcommands of `gitbot`, one module each; the composition root where adapters are built."""

from __future__ import annotations

import click

from gitbot.commands.demo import demo
from gitbot.commands.validate import validate

COMMANDS: list[click.Command] = [demo, validate]
