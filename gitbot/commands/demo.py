"""`gitbot demo`: gitbot's main job on the built-in example, with no cluster, no GitHub and no network."""

from __future__ import annotations

from pathlib import Path

import click

from gitbot.commands.scan import format_table
from gitbot.manifests import scan_paths

EXAMPLES = Path(__file__).resolve().parent.parent / "demo_data"


@click.command()
def demo() -> None:
    """Scan the built-in example and show what gitbot manages there."""
    targets = scan_paths(EXAMPLES, ["."])
    click.echo(f"gitbot demo: {len(targets)} targets in the example manifests under {EXAMPLES}")
    click.echo(format_table(targets))
