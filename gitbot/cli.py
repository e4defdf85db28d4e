"""The `gitbot` command: the group, global options and the one place errors become exit codes.

Each subcommand lives in a module under `gitbot/commands/`; this module only assembles them and turns a
GitbotError into one line on stderr (a traceback only with `--debug`).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import click

from gitbot import __version__
from gitbot.commands import COMMANDS
from gitbot.errors import GitbotError
from gitbot.logs import SecretMasker, environment_secrets, masked_output, process_masker


class LazyGroup(click.Group):
    """A group whose subcommands are imported when first asked for (by name, or all of them for help).

    Start-up then costs only what the command run needs: PyGithub, requests, prometheus-api-client and
    APScheduler load with the commands that use them, not with `gitbot plan` or `gitbot scan`.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
            loaded()
        return super().get_command(ctx, cmd_name)


def loaded() -> None:
    """Start-up is over (`gitbot.__main__` turned the cyclic collector off for it): what it loaded lives as
    long as the process, so it is frozen out of the collector's passes, and the collector runs again. Where
    the collector was on (gitbot run in another program's process), nothing changes."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitbot")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """GitOps commit bot: newer image tags and Prometheus-gated canary steps, as commits or pull requests."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# Click 8.2 reports a bare group as this usage error carrying the help text; 8.1 prints the help itself.
_NO_ARGS_IS_HELP: type[click.UsageError] | None = getattr(click.exceptions, "NoArgsIsHelpError", None)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits with 0, 1 (remote failure) or 2 (usage or config).

    Everything a command prints passes the process masker: secrets it read and credentials by their shape.
    """
    with masked_output(_masker()):
        _main(argv)


def _main(argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="gitbot", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("gitbot: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):
            exc.show()  # `gitbot` or a group alone: the help is the answer
            sys.exit(2)
        # One line like every other error (click's own takes three); the command's --help has the rest.
        command = exc.ctx.command_path if exc.ctx is not None else "gitbot"
        message = " ".join(exc.format_message().split())
        click.echo(f"gitbot: error: {command}: {message} (see '{command} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"gitbot: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(2)
    except GitbotError as exc:
        masker = _masker()
        if debug:
            _print_traceback(exc, masker)
        click.echo(f"gitbot: error: {masker.mask(exc.one_line())}", err=True)
        if exc.hint:
            click.echo(f"gitbot: hint: {masker.mask(' '.join(exc.hint.split()))}", err=True)
        sys.exit(exc.exit_status())
    except Exception as exc:
        # Not a GitbotError: a bug. Its traceback helps a report, but it may quote a token (a library's
        # message about a malformed header, say), so it is masked like everything else.
        masker = _masker()
        _print_traceback(exc, masker)
        message = masker.mask(str(exc) or type(exc).__name__)
        click.echo(f"gitbot: internal error: {type(exc).__name__}: {' '.join(message.split())}", err=True)
        sys.exit(1)
    sys.exit(0)


def _masker() -> SecretMasker:
    """The secrets this process has read, and registry passwords from the environment."""
    masker = process_masker()
    masker.add(*environment_secrets(os.environ))
    return masker


def _print_traceback(exc: BaseException, masker: SecretMasker) -> None:
    text = "".join(traceback.format_exception(exc)).rstrip()
    click.echo(masker.mask(text), err=True)
