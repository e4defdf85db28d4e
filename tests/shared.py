"""Where the shared test data lives: `shared/` next to the repository checkout.

The repository is checked out next to `shared/` (`<dir>/repo` and `<dir>/shared`); a git worktree one
level deeper also finds it, so the nearest ancestor that holds `shared/<name>` wins.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir(name: str) -> Path:
    """`shared/<name>` beside the repository (or beside one of its ancestors)."""
    primary = REPO / ".." / "shared" / name
    if primary.is_dir():
        return primary.resolve()
    for ancestor in REPO.parents:
        candidate = ancestor / "shared" / name
        if candidate.is_dir():
            return candidate
    return primary
