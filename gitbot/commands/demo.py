"""`gitbot demo`: gitbot's main job on the built-in example, with no cluster, no GitHub and no network."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gitbot.demo.story import DemoOptions, run_demo


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Build the sandbox here and keep it (default: a temporary directory, removed at the end).",
)
@click.option("--builtin", is_flag=True, help="Use the built-in tag source and metrics even if real servers exist.")
@click.option(
    "--max-cycles",
    type=click.IntRange(1, 200),
    default=20,
    show_default=True,
    help="Stop after this many reconcile cycles.",
)
def demo(workdir: Path | None, builtin: bool, max_cycles: int) -> None:
    """Run the real reconcile cycle on an accelerated clock against a local sandbox and print each commit."""
    result = run_demo(DemoOptions(workdir, builtin, max_cycles), click.echo)
    if not result.completed:
        click.echo("gitbot: error: the demo's story did not complete (see above)", err=True)
        sys.exit(1)
