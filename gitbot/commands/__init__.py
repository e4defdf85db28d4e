"""The subcommands of `gitbot`, one module each; the composition root where adapters are built."""

from __future__ import annotations

import click

from gitbot.commands.canary import analyze, pause, promote, resume
from gitbot.commands.cycle import once, plan, rollback, status
from gitbot.commands.demo import demo
from gitbot.commands.run import run
from gitbot.commands.scan import scan
from gitbot.commands.set import set_command
from gitbot.commands.tags import tags
from gitbot.commands.validate import validate

COMMANDS: list[click.Command] = [
    demo,
    scan,
    set_command,
    tags,
    validate,
    plan,
    once,
    status,
    rollback,
    analyze,
    promote,
    pause,
    resume,
    run,
]
