"""`gitbot tags IMAGE`: the tags of an image that match a filter, newest first, and the one gitbot selects.

A composition root: it builds the registry adapter (credentials from the environment and Docker's
config.json) and calls `gitbot.versioning`; it owns no logic of its own beyond presenting the result.
Tags a registry sends that are not valid OCI tags are never printed as text (only counted, and listed
JSON-escaped with `--json`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import click

from gitbot.adapters.registry import EnvironmentCredentials, OciRegistry, locate
from gitbot.candidates import Gate, Vetting, narrow, vet
from gitbot.commands.progress import Progress
from gitbot.config import parse_duration
from gitbot.errors import ConfigError
from gitbot.signatures import load_public_key
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
@click.option("--min-age", "min_age", metavar="DURATION", help="Skip tags whose image is younger (as minAge).")
@click.option("--cosign-key", "cosign_key", metavar="FILE", help="Skip tags not signed under this cosign public key.")
@click.option("--digest", "with_digest", is_flag=True, help="Show the manifest digest of the selected tag.")
def tags(
    image: str,
    filter_text: str,
    allow_prerelease: bool,
    as_json: bool,
    insecure_hosts: tuple[str, ...],
    min_age: str | None,
    cosign_key: str | None,
    with_digest: bool,
) -> None:
    """List the tags of IMAGE that match the filter, newest first, and the selected one.

    With --min-age or --cosign-key the tags are judged newest first, as an image policy's minAge and
    verify do, until one qualifies; each tag skipped is shown with the reason.
    """
    flt = parse_filter(filter_text, allow_prerelease=allow_prerelease, where="--filter")
    gate = _gate(min_age, cosign_key, with_digest)
    vetting: Vetting | None = None
    host, path = locate(image)
    with Progress(enabled=False if as_json else None) as progress:

        def on_page(_image: str, pages: int, count: int) -> None:
            progress.show(f"listing tags of {host}/{path}: {pages} page(s), {count} tags")

        with OciRegistry(
            credentials=EnvironmentCredentials(), insecure_hosts=insecure_hosts, on_page=on_page
        ) as registry:
            progress.show(f"listing tags of {host}/{path}...")
            listed = registry.list_tags(image)
            selection = select(listed, flt)
            if gate.needs_facts:
                progress.show(f"judging tags of {host}/{path}...")
                inspect = partial(
                    registry.inspect_tag, image, created=gate.min_age is not None, signatures=gate.key is not None
                )
                vetting = vet(selection.candidates, gate, inspect, datetime.now(UTC))
            requests = sum(registry.requests.values())
    selection = narrow(selection, vetting)
    skipped = dict(vetting.skipped) if vetting is not None else {}
    if as_json:
        document: dict[str, object] = {
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
        if vetting is not None:
            document["digest"] = vetting.digest
            document["skipped"] = [{"tag": tag, "reason": reason} for tag, reason in vetting.skipped]
        click.echo(json.dumps(document, indent=2))
        return
    for tag in selection.candidates:
        if tag == selection.selected:
            click.echo(f"{tag}  <- selected")
        elif tag in skipped:
            click.echo(f"{tag}  skipped: {skipped[tag]}")
        else:
            click.echo(tag)
    summary = f"{len(selection.candidates)} of {len(listed)} tags of {host}/{path} match {filter_text!r}"
    if selection.ignored:
        summary += f"; {len(selection.ignored)} invalid tags ignored"
    if skipped:
        summary += f"; {len(skipped)} skipped"
    click.echo(summary)
    if vetting is not None and vetting.note:
        click.echo(vetting.note)
    pinned = f"@{vetting.digest}" if vetting is not None and vetting.digest and with_digest else ""
    click.echo(f"selected: {selection.selected}{pinned}" if selection.selected else "selected: none")


def _gate(min_age: str | None, cosign_key: str | None, with_digest: bool) -> Gate:
    try:
        age = parse_duration(min_age) if min_age is not None else None
    except ValueError as exc:
        raise ConfigError(str(exc), where="--min-age") from None
    key = None
    if cosign_key is not None:
        try:
            pem = Path(cosign_key).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the cosign public key: {type(exc).__name__}", where=cosign_key) from exc
        key = load_public_key(pem, where=f"--cosign-key {cosign_key}")
    return Gate(min_age=age, pin=with_digest, key=key)
