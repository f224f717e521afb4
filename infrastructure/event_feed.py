"""The EventFeed port on the event store: notifications read in position order and decoded
with the ledger's mapper, a bounded batch at a time (never the whole log in memory)."""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.application import Application

from application.event_feed import EventRecord, record_of


class StoreEventFeed:
    def __init__(self, app: Application) -> None:
        self.app = app

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int, wants_topic: Callable[[str], bool]) -> tuple[list[EventRecord], int]:
        notifications = self.app.recorder.select_notifications(after + 1, limit)
        records = [record_of(self.app.mapper.to_domain_event(n), n.id, n.topic)
                   for n in notifications if wants_topic(n.topic)]
        return records, notifications[-1].id if notifications else after
