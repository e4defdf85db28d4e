"""The real clock: timezone-aware UTC time from the system."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """`gitbot.ports.Clock` backed by the system time."""

    def now(self) -> datetime:
        return datetime.now(UTC)
