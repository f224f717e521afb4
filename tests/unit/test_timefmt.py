"""Upstream's timestamp text: UTC, milliseconds (truncated), a `Z`; from any timezone-aware time,
and back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from domain.timefmt import iso, iso_or_none, parse_iso, unix, utc

MOMENT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


@pytest.mark.parametrize("tz", [timezone.utc, ZoneInfo("UTC"), timezone(timedelta(hours=2)),
                                ZoneInfo("America/New_York"), timezone(timedelta(minutes=-90))])
def test_any_timezone_gives_the_same_utc_text(tz) -> None:
    assert iso(MOMENT.astimezone(tz)) == "2026-01-02T03:04:05.678Z"


def test_text_round_trips_and_sorts_in_time_order() -> None:
    assert parse_iso(iso(MOMENT)) == MOMENT.replace(microsecond=678000)
    later = [MOMENT + timedelta(milliseconds=n) for n in (1, 999, 1000, 86_400_000)]
    texts = [iso(m) for m in [MOMENT, *later]]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)
    assert iso_or_none(None) is None and iso_or_none(MOMENT) == texts[0]
    assert unix(texts[0]) == int(MOMENT.timestamp())


def test_utc_reads_a_clients_time_or_says_why_it_cannot():
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert utc(naive) == naive.replace(tzinfo=timezone.utc)
    east = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert utc(east) == east and utc(east).tzinfo is timezone.utc and utc(east).hour == 21 and utc(east).day == 1
    for edge in (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=18))),
                 datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-18)))):
        with pytest.raises(ValueError, match="outside years 1 to 9999 in UTC"):
            utc(edge)
    assert utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=-18)))).hour == 18


def test_the_text_is_isoformat_with_milliseconds_for_every_kind_of_moment() -> None:
    import random

    rng = random.Random(3)
    moments = [datetime(1, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
               MOMENT.replace(microsecond=0), MOMENT.replace(microsecond=999), MOMENT.replace(microsecond=1000),
               datetime(999, 2, 3, 4, 5, 6, 7000, tzinfo=timezone.utc)]
    moments += [datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=rng.randrange(315_537_897_600_000_000))
                for _ in range(2000)]
    for moment in moments:
        assert iso(moment) == moment.isoformat(timespec="milliseconds")[:-6] + "Z", moment
