"""Times as AnythingLLM sends them: UTC ISO 8601 with milliseconds and a `Z`
(`2026-01-02T03:04:05.678Z`). Such strings sort as text in time order, so read models
store them as TEXT and compare them directly."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_encode = msgspec.json.encode


def iso(moment: datetime) -> str:
    """`moment` (timezone-aware) as upstream's timestamp text."""
    if moment.tzinfo is not timezone.utc:  # decoded events and the clock give UTC: no conversion (a third of the time)
        moment = moment.astimezone(timezone.utc)
    # msgspec writes RFC 3339 (`"2026-01-02T03:04:05.678901Z"`, no fraction when it is 0) in a
    # twentieth of the time isoformat takes, and projections format a time for every event.
    text = _encode(moment)
    return text[1:24].decode() + "Z" if len(text) == 29 else text[1:20].decode() + ".000Z"


def utc(moment: datetime) -> datetime:
    """A client's time in UTC (naive means UTC). ValueError when UTC cannot hold it: an offset
    can carry year 1 or 9999 past the range a datetime has (`0001-01-01T00:00:00+18:00`)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is outside years 1 to 9999 in UTC") from None


def iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def parse_iso(text: str) -> datetime:
    """The inverse of `iso` (a timezone-aware UTC datetime)."""
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=timezone.utc)


def unix(text: str) -> int:
    """Whole seconds since the epoch of an `iso` string (OpenAI's `created`, upstream's `sentAt`)."""
    return int(parse_iso(text).timestamp())
