"""A policy's five-field crontab schedule, read by the scheduler's own cron parser.

This module owns what `schedule.cron` means: the policy loader checks it here and the service builds its
trigger here, so `gitbot validate` accepts exactly the schedules the daemon runs. Each field is read by
APScheduler 3's `CronTrigger`, in UTC, except the day of week: crontab counts Sunday as 0 (and 7) where
APScheduler 3 counts Monday as 0, so that field is turned into day names first.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# The fields APScheduler reads as they are written, with their crontab names for messages.
_FIELDS = (("minute", "minute"), ("hour", "hour"), ("day", "day of month"), ("month", "month"))
_WEEKDAY_PART = re.compile(r"^(?:\*|(?P<low>[a-z0-9]+)(?:-(?P<high>[a-z0-9]+))?)(?:/(?P<step>[0-9]+))?$")


def cron_trigger(cron: str, *, jitter: float | None = None) -> CronTrigger:
    """The APScheduler `CronTrigger` of a five-field crontab expression, in UTC; ValueError naming the field.

    `jitter` is the trigger's random delay in seconds (none when 0 or None).
    """
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"cron must have five fields (minute hour day month weekday), got {cron!r}")
    # Imported here: only a policy with a cron schedule pays for the scheduler's modules (asyncio, tzlocal).
    from apscheduler.triggers.cron import CronTrigger

    values = dict(zip((key for key, _ in _FIELDS), fields, strict=False))
    weekday = crontab_weekdays(fields[4], cron)
    try:
        return CronTrigger(**values, day_of_week=weekday, timezone=UTC, jitter=jitter or None)
    except ValueError as exc:
        for key, label in _FIELDS:
            try:
                CronTrigger(**{key: values[key]}, timezone=UTC)
            except ValueError as field_exc:
                raise ValueError(f"cron {label} field {values[key]!r}: {_reason(field_exc)} (in {cron!r})") from exc
        raise ValueError(f"cron {cron!r}: {_reason(exc)}") from exc


def _reason(exc: ValueError) -> str:
    """APScheduler's message without the expression it repeats (`Error validating expression '99': ...`)."""
    return re.sub(r"^Error validating expression '[^']*': ", "", str(exc))


def crontab_weekdays(text: str, cron: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday, names, `a-b`, `/step`, lists) as APScheduler day names."""
    if text == "*":
        return text
    days: set[int] = set()
    for part in text.lower().split(","):
        match = _WEEKDAY_PART.match(part)
        if match is None or match.group("step") == "0":
            raise ValueError(f"cron day of week field {text!r} is not *, N, N-M or */S (in {cron!r})")
        step = int(match.group("step") or 1)
        if match.group("low") is None:
            low, high = 0, 6
        else:
            low = _weekday(match.group("low"), text, cron)
            high = (
                _weekday(match.group("high"), text, cron) if match.group("high") else 6 if match.group("step") else low
            )
            if low > high:
                raise ValueError(f"cron day of week field {text!r} has a range that runs backwards (in {cron!r})")
        days |= {day % 7 for day in range(low, high + 1, step)}
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(value: str, text: str, cron: str) -> int:
    if value in _WEEKDAYS:
        return _WEEKDAYS.index(value)
    if value.isdigit() and int(value) <= 7:
        return int(value)
    raise ValueError(f"cron day of week field {text!r} must stay within 0-7 or sun-sat (in {cron!r})")
