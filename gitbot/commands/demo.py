"""`gitbot demo`: gitbot's main job on the built-in example, with no cluster, no GitHub and no network."""

from __future__ import annotations

from pathlib import Path

import click

EXAMPLES = Path(__file__).resolve().parent.parent / "demo_data"


@click.command()
def demo() -> None:
    """Run gitbot on the built-in example and show what it manages."""
    files = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.yaml"))
    click.echo(f"gitbot demo: {len(files)} example manifests under {EXAMPLES}")
    for name in files:
        click.echo(f"  {name}")
