"""The event feed: the store's events in position order for outside consumers, a page at a time.

One rendering of an event (`EventRecord`, made by `record_of`) serves `ledgerllm events export`
and `GET /api/v1/admin/events` (plus its SSE stream) alike. The HTTP feed leaves out the
credential hashes events carry (password, key, sign-in token and invite code hashes); the
export keeps them, because `events import` restores a store from it.

Cursor semantics: a page holds the matching events with position > `after`, oldest first, at
most `limit` of them; `next` is the position to pass as `after` for the following page (the
last event returned, or the last position scanned when a filter skipped the rest), so walking
pages visits every matching event exactly once. A filtered page may hold fewer than `limit`
events (at most SCAN_MAX positions are scanned per page) while `next < head`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import msgspec

from application.access import check_admin
from application.audit import parse_id, parse_type, resolve_user
from domain.audited import Audited
from domain.errors import InvalidInput
from domain.principal import Principal

if TYPE_CHECKING:
    from application.views import AccountsView, EventFeed

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
SCAN_MAX = 10_000  # positions one page may scan past for a filter before it returns what it has
BATCH = 1000
# Fields every event carries (they have their own record fields), not part of its payload.
META_FIELDS = frozenset({
    "originator_id", "originator_version", "timestamp", "originator_topic",
    "actor_user_id", "actor_api_key_id", "correlation_id",
})
# Hashes of credentials: not secrets themselves, but a password hash can be attacked offline
# and none is any use to a consumer. The HTTP feed never shows them.
CREDENTIAL_FIELDS = frozenset({"password_hash", "secret_hash", "token_hash", "code_hash"})


class EventRecord(msgspec.Struct, frozen=True):
    """One stored event as the export writes it and the feed serves it."""

    position: int | None
    timestamp: datetime
    type: str  # the event class's qualified name, e.g. ApiKey.Issued
    topic: str
    aggregate_id: UUID
    version: int
    actor_user_id: int | None
    actor_api_key_id: int | None
    correlation_id: str | None
    payload: dict[str, object]  # the event's own fields

    def without_credentials(self) -> EventRecord:
        if CREDENTIAL_FIELDS.isdisjoint(self.payload):
            return self
        kept = {k: v for k, v in self.payload.items() if k not in CREDENTIAL_FIELDS}
        return msgspec.structs.replace(self, payload=kept)


def record_of(event: Audited.Event, position: int | None, topic: str) -> EventRecord:
    return EventRecord(
        position=position, timestamp=event.timestamp, type=type(event).__qualname__, topic=topic,
        aggregate_id=event.originator_id, version=event.originator_version,
        actor_user_id=getattr(event, "actor_user_id", None), actor_api_key_id=getattr(event, "actor_api_key_id", None),
        correlation_id=getattr(event, "correlation_id", None),
        payload={k: v for k, v in vars(event).items() if k not in META_FIELDS},
    )


def type_matches(qualname: str, wanted: str) -> bool:
    """`wanted` names the event class (`ApiKey.Issued`) or a prefix of it (`ApiKey`)."""
    return qualname == wanted or qualname.startswith(wanted + ".")


class FeedQuery(msgspec.Struct, frozen=True):
    after: int = 0
    limit: int = DEFAULT_LIMIT
    type: str | None = None
    user_id: int | None = None
    key_id: int | None = None

    def wants_topic(self, topic: str) -> bool:
        return self.type is None or type_matches(topic.partition(":")[2] or topic, self.type)

    def wants(self, record: EventRecord) -> bool:
        return ((self.user_id is None or record.actor_user_id == self.user_id)
                and (self.key_id is None or record.actor_api_key_id == self.key_id))

    @property
    def filtered(self) -> bool:
        return self.type is not None or self.user_id is not None or self.key_id is not None


class FeedPage(msgspec.Struct, frozen=True):
    events: list[EventRecord]
    next: int  # pass as `after` for the following page
    head: int  # the store's newest position when the page was read

    @property
    def has_more(self) -> bool:
        return self.next < self.head


def feed_query(accounts: AccountsView | None, *, after: int = 0, limit: int = DEFAULT_LIMIT, type: str | None = None,
               user: str | None = None, key: str | None = None) -> FeedQuery:
    """Check and convert the filters; a bad one raises InvalidInput (a 400)."""
    if not 0 <= after < 2**63:
        raise InvalidInput("after must be an event position, 0 or more")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    return FeedQuery(after=after, limit=limit, type=parse_type(type), user_id=resolve_user(accounts, user),
                     key_id=parse_id(key, "key"))


def read_feed(feed: EventFeed, principal: Principal, query: FeedQuery) -> FeedPage:
    """Admins only (with the `admin` scope). Reads at most one page's worth of decoded events."""
    check_admin(principal)
    head = feed.head()
    events: list[EventRecord] = []
    cursor, scanned = query.after, 0
    step = BATCH if query.filtered else query.limit
    while cursor < head and len(events) < query.limit and scanned < SCAN_MAX:
        records, last = feed.read(cursor, min(step, head - cursor), query.wants_topic)
        if last <= cursor:
            break
        scanned += last - cursor
        for record in records:
            if query.wants(record):
                events.append(record.without_credentials())
                if len(events) == query.limit:
                    last = record.position or last
                    break
        cursor = last
    return FeedPage(events, cursor, head)
