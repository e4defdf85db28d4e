"""`gitbot set FILE LOCATOR=VALUE... [--stdout]`: change scalars in one file, byte-exact, atomically.

LOCATOR is `DOCUMENT:POINTER` (0-based document, RFC 6901 pointer), e.g. `2:/spec/http/0/route/1/weight`.
All assignments form one edit; any refusal leaves the file untouched and exits 2 with one line.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from pathlib import Path

import click

from gitbot.domain import Assignment
from gitbot.edits import apply_assignments
from gitbot.errors import EditError, UsageError

_LOCATOR = re.compile(r"^(0|[1-9][0-9]*):(/[^=]*)=(.*)$", re.DOTALL)


def parse_assignment(text: str) -> Assignment:
    """`DOCUMENT:POINTER=VALUE` as an Assignment; the pointer ends at the first `=`."""
    match = _LOCATOR.match(text)
    if match is None:
        raise UsageError(f"expected DOCUMENT:POINTER=VALUE, e.g. 0:/spec/replicas=3, got {text!r}")
    return Assignment(document=int(match.group(1)), pointer=match.group(2), value=match.group(3))


def read_manifest(path: Path) -> tuple[str, int]:
    """The text of a regular, non-symlink file and its permission bits."""
    if path.is_symlink():
        raise EditError("refusing to write through a symlink", where=str(path))
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise EditError("no such file", where=str(path)) from exc
    if not stat.S_ISREG(info.st_mode):
        raise EditError("not a regular file", where=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EditError(f"cannot read: {exc.strerror}", where=str(path)) from exc
    try:
        return data.decode("utf-8"), stat.S_IMODE(info.st_mode)
    except UnicodeDecodeError as exc:
        raise EditError(f"not UTF-8 (byte {exc.start})", where=str(path)) from exc


def check_writable(path: Path, mode: int) -> None:
    """Refuse a file nobody may write (or this user may not): a rename would replace it regardless."""
    if not mode & 0o222 or not os.access(path, os.W_OK):
        raise EditError("file is read-only", where=str(path))


def replace_atomically(path: Path, text: str, mode: int) -> None:
    """Write `text` to a temporary file beside `path` with `mode`, then rename it over `path`."""
    try:
        # A short prefix: the temporary name must fit the file system's limit even when `path`'s nearly does.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp")
    except OSError as exc:
        raise EditError(f"cannot write beside the file: {exc.strerror}", where=str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise EditError(f"cannot write: {exc.strerror}", where=str(path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command(name="set")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("assignments", nargs=-1, required=True)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the edited text instead of replacing FILE.")
def set_command(file: Path, assignments: tuple[str, ...], to_stdout: bool) -> None:
    """Set scalars in FILE: LOCATOR=VALUE, where LOCATOR is DOCUMENT:POINTER."""
    wanted = [parse_assignment(a) for a in assignments]
    text, mode = read_manifest(file)
    if not to_stdout:
        check_writable(file, mode)
    result = apply_assignments(text, wanted, source=str(file))
    if to_stdout:
        sys.stdout.flush()
        sys.stdout.buffer.write(result.encode("utf-8"))
        sys.stdout.buffer.flush()
        return
    if result == text:
        click.echo(f"{file}: unchanged")
        return
    replace_atomically(file, result, mode)
    # The same locator given twice (with the same value) is one value.
    click.echo(f"{file}: {len({(a.document, a.pointer) for a in wanted})} value(s) set")
