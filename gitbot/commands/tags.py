"""`gitbot tags IMAGE`: the tags of an image that match a filter, newest first, and the one gitbot selects.

A composition root: it builds the registry adapter (credentials from the environment and Docker's
config.json) and calls `gitbot.versioning`; it owns no logic of its own beyond presenting the result.
Tags a registry sends that are not valid OCI tags are never printed as text (only counted, and listed
JSON-escaped with `--json`).
"""

from __future__ import annotations

import json

import click

from gitbot.adapters.registry import EnvironmentCredentials, OciRegistry, locate
from gitbot.commands.progress import Progress
from gitbot.versioning import parse_filter, select


@click.command()
@click.argument("image")
@click.option("--filter", "filter_text", default="*", show_default=True, help="glob, semver:RANGE or regexp:RE.")
@click.option("--allow-prerelease", is_flag=True, help="Let pre-release tags match.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--insecure-host",
    "insecure_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Use plain HTTP for this registry (loopback always may). Repeatable.",
)
def tags(image: str, filter_text: str, allow_prerelease: bool, as_json: bool, insecure_hosts: tuple[str, ...]) -> None:
    """List the tags of IMAGE that match the filter, newest first, and the selected one."""
    flt = parse_filter(filter_text, allow_prerelease=allow_prerelease, where="--filter")
    host, path = locate(image)
    with Progress(enabled=False if as_json else None) as progress:

        def on_page(_image: str, pages: int, count: int) -> None:
            progress.show(f"listing tags of {host}/{path}: {pages} page(s), {count} tags")

        with OciRegistry(
            credentials=EnvironmentCredentials(), insecure_hosts=insecure_hosts, on_page=on_page
        ) as registry:
            progress.show(f"listing tags of {host}/{path}...")
            listed = registry.list_tags(image)
            requests = sum(registry.requests.values())
    selection = select(listed, flt)
    if as_json:
        document = {
            "image": image,
            "registry": host,
            "repository": path,
            "filter": filter_text,
            "selected": selection.selected,
            "matching": list(selection.candidates),
            "ignored": list(selection.ignored),
            "total": len(listed),
            "requests": requests,
        }
        click.echo(json.dumps(document, indent=2))
        return
    for tag in selection.candidates:
        click.echo(f"{tag}  <- selected" if tag == selection.selected else tag)
    summary = f"{len(selection.candidates)} of {len(listed)} tags of {host}/{path} match {filter_text!r}"
    if selection.ignored:
        summary += f"; {len(selection.ignored)} invalid tags ignored"
    click.echo(summary)
    click.echo(f"selected: {selection.selected}" if selection.selected else "selected: none")
