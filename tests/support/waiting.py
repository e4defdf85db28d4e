"""Waiting for the daemon's threads without a clock: a test sleeps until something it watches has changed.

Owns `Changes`, a condition variable that a service's scheduler pokes at each of its events (a tick handed to
the executor, a cycle run, failed, missed or skipped) and that a test's runner pokes when it changed what the
test reads. `wait_until` checks its condition again at each poke, never on a timer; its timeout only bounds
a run that hangs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from apscheduler.events import EVENT_ALL

from gitbot.service import Service


class Changes:
    def __init__(self) -> None:
        self._condition = threading.Condition()

    def changed(self, _event: object = None) -> None:
        """Wake every waiter to check its condition again (also a scheduler listener)."""
        with self._condition:
            self._condition.notify_all()

    def watch(self, service: Service) -> None:
        service.scheduler.add_listener(self.changed, EVENT_ALL)

    def unwatch(self, service: Service) -> None:
        service.scheduler.remove_listener(self.changed)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Whether `condition` holds, checked now and after each change, before `timeout` seconds pass."""
        with self._condition:
            return self._condition.wait_for(condition, timeout)
