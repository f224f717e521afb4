"""A clock the test moves by hand, for the `Clock` port: expiry without sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, **delta: float) -> None:
        step = timedelta(**delta)
        self._now += step
        self._mono += step.total_seconds()
