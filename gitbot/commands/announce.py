"""Notifications from the commands a person runs (`gitbot once`, `rollback`, `promote`, `pause`, `resume`).

Owns the one call each command makes after its result: build the notices (`gitbot.notices`), send them to the
policy's receivers, and print one warning line per notice not sent. Nothing here fails the command: what it
did is done and printed already.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import click

from gitbot.adapters.notify import notify_from_command
from gitbot.config import Policy
from gitbot.cron import cron_trigger
from gitbot.cycle import CycleResult
from gitbot.delivery import Delivery
from gitbot.domain import Notice
from gitbot.logs import log_event, process_masker
from gitbot.notices import ManualCommand, command_notice, cycle_notices

_log = logging.getLogger("gitbot.notify")


def _announce(policy: Policy, make: Callable[[datetime], Sequence[Notice | None]], now: datetime | None) -> None:
    try:
        notices = [notice for notice in make(now or datetime.now(UTC)) if notice is not None]
        problems = notify_from_command(policy, os.environ, notices)
    except Exception as exc:
        log_event(_log, "notification raised", level=logging.ERROR, policy=policy.name, error_type=type(exc).__name__)
        problems = [f"notifications not sent: {type(exc).__name__}"]
    for problem in problems:
        click.echo(f"gitbot: warning: {process_masker().mask(problem)}", err=True)


def notice_window(policy: Policy, now: datetime) -> timedelta:
    """The time one cycle of `policy` answers for in notifications: its interval, or for a cron schedule the
    gap between its next two ticks (see `gitbot.notices`)."""
    interval = policy.spec.schedule.interval
    if interval is not None:
        return interval
    # The cron trigger alone, not the daemon's scheduler: `gitbot once` announces by the daemon's rules too.
    assert policy.spec.schedule.cron is not None
    trigger = cron_trigger(policy.spec.schedule.cron, jitter=0)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first is not None else None
    if not isinstance(first, datetime) or not isinstance(second, datetime):
        return timedelta(minutes=5)
    return max(second - first, timedelta(seconds=1))


def announce_cycle(policy: Policy, result: CycleResult, now: datetime | None = None) -> None:
    """Tell what a `gitbot once` cycle did, by the rules the daemon's cycles follow (`now`: the cycle's time)."""
    _announce(
        policy,
        lambda at: cycle_notices(policy, result, now=at, window=notice_window(policy, at), source="once"),
        now,
    )


def announce_command(policy: Policy, command: ManualCommand, name: str, delivery: Delivery, reason: str = "") -> None:
    """Tell what a command run by hand changed (nothing when it changed nothing)."""
    _announce(policy, lambda at: [command_notice(policy, command, name, delivery, now=at, reason=reason)], None)
