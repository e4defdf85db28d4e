"""A process killed right after its push landed, for tests of commands that are run again after a crash.

`killed_after_push(deps)` gives the same adapters, except that a checkout's push to the environment branch
or to a bot branch reaches the real git server and then stops the command with `Killed`, before it can
report anything or open a pull request: what a `kill -9` at that moment leaves behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from gitbot.cycle import Deps
from gitbot.ports import Checkout, Workspace


class Killed(BaseException):
    """The command was stopped after its push landed (a BaseException: nothing in gitbot handles it)."""


class _KilledCheckout:
    def __init__(self, real: Checkout) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def push(self) -> None:
        self._real.push()
        raise Killed("killed after the push landed")

    def push_branch(self, branch: str, sha: str, expected: str | None = None) -> None:
        self._real.push_branch(branch, sha, expected)
        raise Killed(f"killed after the push of {branch} landed")


@dataclass(frozen=True)
class _KilledWorkspace:
    real: Workspace

    def checkout(self) -> AbstractContextManager[Checkout]:
        return self._checkout()

    @contextmanager
    def _checkout(self) -> Iterator[Checkout]:
        with self.real.checkout() as checkout:
            yield _KilledCheckout(checkout)


def killed_after_push(deps: Deps) -> Deps:
    """`deps` whose first push lands and then kills the command."""
    return replace(deps, workspace=_KilledWorkspace(deps.workspace))
