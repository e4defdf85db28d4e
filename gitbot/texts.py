"""The texts of a cycle's manifests, read from the checkout only if the cycle needs one of them.

The scan reads the files its cache does not know; the files it knew (most of them, every cycle after the
first) hold targets whose texts only an edit needs. A cycle that changes nothing needs none, so they are not
read; the first text asked for brings all of them in one read, so a cycle that edits is not slower.
This module owns only that bookkeeping: it does no I/O but through the reader it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping


class TextsOnDemand(Mapping[str, str]):
    """Texts of a fixed set of files: those handed over, and the others read together when first asked for.

    Which files it holds (`in`, `len`, iteration) is known without reading any; a text is read only when it
    is looked up (`[]`, `get`, `values`, `items`).
    """

    def __init__(self, read: Callable[[Collection[str]], Mapping[str, str]]) -> None:
        self._read = read
        self._texts: dict[str, str] = {}
        # In the order they are read (sorted by path); a dict for lookups in constant time.
        self._later: dict[str, None] = {}

    def update(self, texts: Mapping[str, str]) -> None:
        """Texts already read."""
        self._texts.update(texts)

    def read_later(self, files: Collection[str]) -> None:
        """Files whose texts are read when one of them is first asked for (those already held are skipped)."""
        self._later.update(dict.fromkeys(sorted(file for file in files if file not in self._texts)))

    def __getitem__(self, file: str) -> str:
        if file not in self._texts and self._later:
            later, self._later = list(self._later), {}
            self._texts.update(self._read(later))
        return self._texts[file]

    def __contains__(self, file: object) -> bool:
        return file in self._texts or file in self._later

    def __iter__(self) -> Iterator[str]:
        yield from list(self._texts)
        yield from list(self._later)

    def __len__(self) -> int:
        return len(self._texts) + len(self._later)
