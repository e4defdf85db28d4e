"""Progress of long interactive commands: one status line on stderr, rewritten in place, only on a terminal.

Owns: deciding whether to show progress (stderr is a terminal and the command's output is not JSON),
drawing and erasing the line, and keeping other stderr messages from landing on it. The library code it
reports on only calls plain callbacks (`scan_paths(progress=...)`, `Deps.progress`, the registry's
`on_page`); it never writes to a terminal itself. Nothing is written when stderr is a pipe or a file, so
logs and captured output never hold progress lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

_ERASE = "\r\x1b[K"
# A redraw per scanned file would cost more than the scan on a fast disk; a few per second is readable.
_MIN_INTERVAL = 0.1


class Progress:
    """A status line on `stream` (stderr by default), drawn only when `enabled` (default: it is a terminal).

    Use as a context manager so the line is erased however the command ends, before any error is printed.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self._stream) if enabled is None else enabled
        self._clock = clock
        self._shown = False
        self._last = float("-inf")
        self._prefix = prefix

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.clear()

    def show(self, text: str, *, force: bool = True) -> None:
        """Replace the status line with `text`; with `force` False, only if the last redraw is not too recent."""
        if not self.enabled:
            return
        now = self._clock()
        if not force and now - self._last < _MIN_INTERVAL:
            return
        self._last = now
        self._stream.write(f"{_ERASE}{self._prefix}{text}")
        self._stream.flush()
        self._shown = True

    def stage(self, name: str) -> None:
        """A named stage of a longer task has started (e.g. `scan`)."""
        self.show(f"{name}...")

    def count(self, label: str) -> Callable[[int, int], None]:
        """A callback `(done, total)` that shows `label done/total`, redrawn at most a few times a second."""

        def update(done: int, total: int) -> None:
            self.show(f"{label} {done}/{total}", force=done in (0, total))

        return update

    def clear(self) -> None:
        """Erase the status line (if one is shown) so that the next output starts on a clean line."""
        if self._shown:
            self._stream.write(_ERASE)
            self._stream.flush()
            self._shown = False

    def around(self, emit: Callable[[str], None]) -> Callable[[str], None]:
        """`emit` that first erases the status line, so a message never runs on from it."""

        def wrapped(message: str) -> None:
            self.clear()
            emit(message)

        return wrapped


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
