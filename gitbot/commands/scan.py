"""`gitbot scan PATH... [--json]`: list the values gitbot manages under the given files and directories."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import click

from gitbot.commands.progress import Progress
from gitbot.config import parse_size
from gitbot.domain import Target
from gitbot.errors import ManifestError
from gitbot.manifests import MAX_FILE_SIZE, NOT_SCANNED, Problem, ScanCache, scan_tree


def _detail(target: Target) -> str:
    parts = []
    if target.container:
        parts.append(f"container={target.container}")
    if target.marker:
        parts.append(f"marker={target.marker}")
    if target.route is not None:
        parts.append(f"route={target.route}")
    if target.destination:
        parts.append(target.destination)
    if target.implicit:
        parts.append("unwritten (default)")
    if target.unmanaged:
        parts.append(f"unmanaged={target.unmanaged}")
    return " ".join(parts)


def _cell(text: str) -> str:
    """`text` with characters a terminal would act on (line breaks, escapes) written as Python escapes."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def format_table(targets: Sequence[Target]) -> str:
    """Targets as an aligned text table, one row per target, with its locator for `gitbot set`.

    Manifests are input: a value holding a line break or a terminal escape is shown escaped, on its row.
    """
    header = ("WHERE", "LOCATOR", "RESOURCE", "KIND", "VALUE", "DETAIL")
    rows = [header] + [
        tuple(
            _cell(cell)
            for cell in (
                f"{t.file}:{t.line}:{t.column}",
                f"{t.document}:{t.pointer}",
                t.resource,
                t.kind,
                t.value,
                _detail(t),
            )
        )
        for t in targets
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def refuse_named_files(paths: Sequence[str], problems: Sequence[Problem]) -> None:
    """ManifestError for a file named on the command line that does not parse: the one asked about cannot
    be listed; files found in a named directory are listed as problems, and the rest is scanned."""
    root = Path()
    files = [root / path for path in paths if (root / path).is_file()]
    named = {path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix() for path in files}
    for problem in problems:
        if problem.mentions is not None and problem.file in named:
            where = problem.file if problem.line is None else f"{problem.file}:{problem.line}"
            raise ManifestError(problem.why.removesuffix(NOT_SCANNED), where=where)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per target.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep scan results here, keyed by content, so unchanged files are not parsed again.",
)
@click.option(
    "--max-file-size",
    default=str(MAX_FILE_SIZE),
    show_default=True,
    help="Skip (and report) files larger than this: bytes, or with a unit (512Ki, 4Mi).",
)
def scan(paths: tuple[str, ...], as_json: bool, cache_dir: Path | None, max_file_size: str) -> None:
    """List image, tag, digest and weight targets in the YAML files under PATHS."""
    try:
        limit = parse_size(max_file_size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-file-size") from None
    cache = ScanCache(cache_dir) if cache_dir is not None else None
    with Progress(enabled=False if as_json else None) as progress:
        found = scan_tree(Path(), paths, cache=cache, progress=progress.count("scanning files"), max_file_size=limit)
    if cache is not None:
        cache.save()
    refuse_named_files(paths, found.problems)
    targets = found.targets
    if as_json:
        click.echo(json.dumps([asdict(t) for t in targets], indent=2))
        # The JSON array stays a list of targets; files not read are told on stderr, one line each.
        for problem in found.problems:
            click.echo(f"gitbot: problem: {problem}", err=True)
        return
    click.echo(format_table(targets))
    for problem in found.problems:
        click.echo(f"problem: {_cell(str(problem))}")
    unread = sum(1 for problem in found.problems if problem.mentions is None)
    unparsed = len(found.problems) - unread
    skipped = (f"; {unread} file(s) not read" if unread else "") + (
        f"; {unparsed} file(s) not parsed" if unparsed else ""
    )
    click.echo(f"{len(targets)} target(s) in {len({t.file for t in targets})} file(s){skipped}")
