"""A Workspace whose checkout is a plain directory: what planning reads (files, an empty log), nothing else.

For tests and benchmarks that run a cycle in process over files on disk, without a git server.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitbot.domain import CommitInfo
from gitbot.manifests import walk_files
from gitbot.ports import TreeFile


@dataclass
class DirectoryCheckout:
    root: Path
    head: str = "0" * 40

    def log(self, max_count: int = 500) -> list[CommitInfo]:
        return []

    def files(self, paths: Sequence[str]) -> list[TreeFile]:
        return walk_files(self.root, paths)

    def read(self, files: Sequence[str]) -> dict[str, bytes]:
        return {file: (self.root / file).read_bytes() for file in files}


@dataclass
class DirectoryWorkspace:
    root: Path

    @contextmanager
    def checkout(self) -> Iterator[Any]:
        yield DirectoryCheckout(self.root)
