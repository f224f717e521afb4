"""`GET /api/v1/admin/events`: the event store in position order, a page at a time with the next
cursor; `GET /api/v1/admin/events/stream`: the same as server-sent events that follow the store
(`id:` the position, `event:` the type, `data:` the event's JSON), resumable with
`Last-Event-ID`. Admins only, with the `admin` scope. Both render events as `ledgerllm events
export` does, without the credential hashes (see application.event_feed).

Back-pressure: the stream reads one page, sends it, and reads the next only once the client has
taken it (the ASGI server's send waits while the socket is full), so a slow client never makes
the server hold more than a page. Caught up, it polls the store's head every POLL_SECONDS and
sends a comment line every FEED_HEARTBEAT_SECONDS; it ends after FEED_STREAM_SECONDS, or when
the server begins to shut down, and the client resumes from the last id it saw."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Annotated

import anyio
import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Stream

from api.auth import presented_token, principal_for_token, requires_role, requires_scope
from api.schema import JS_SAFE_MAX
from api.sse import SSE_HEADERS
from application import event_feed
from application.event_feed import DEFAULT_LIMIT, MAX_LIMIT, EventRecord, FeedQuery
from application.ledger import Context
from application.views import EventFeed
from domain.principal import Principal, Role

EVENT_STREAM = "text/event-stream"
POLL_SECONDS = 0.25
RECHECK_SECONDS = 1.0  # how soon an open stream ends after its key is revoked or its user loses admin
STREAM_PAGE = 100  # events read per page by the stream
_encode = msgspec.json.Encoder().encode

Position = Annotated[int, Parameter(ge=0, le=JS_SAFE_MAX, description="events after this position (0: from the start)")]


class FeedParams(msgspec.Struct, frozen=True):
    """The feed's query: a cursor, a page size and the filters `ledgerllm events` knows."""

    after: Annotated[int, msgspec.Meta(ge=0, le=JS_SAFE_MAX)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    type: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    user: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    key: Annotated[int, msgspec.Meta(ge=1, le=JS_SAFE_MAX)] | None = None


EventType = Annotated[str | None, Parameter(query="type", max_length=100,
                                           description="ApiKey.Issued, or a prefix like ApiKey")]
ActingUser = Annotated[str | None, Parameter(max_length=200, description="acting user: id or username")]
KeyUsed = Annotated[int | None, Parameter(ge=1, le=JS_SAFE_MAX, description="API key id used")]


def feed_params(
    after: Position = 0,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description=f"events a page, 1 to {MAX_LIMIT}")] = DEFAULT_LIMIT,
    event_type: EventType = None, user: ActingUser = None, key: KeyUsed = None,
) -> FeedParams:
    return FeedParams(after=after, limit=limit, type=event_type, user=user, key=key)


def stream_params(after: Position = 0, event_type: EventType = None, user: ActingUser = None,
                  key: KeyUsed = None) -> FeedParams:
    """The stream's query: the page route's without `limit` (the stream pages by itself)."""
    return FeedParams(after=after, limit=STREAM_PAGE, type=event_type, user=user, key=key)


class EventPageOut(msgspec.Struct):
    """`next`: pass it as `after` for the following page; `hasMore`: `next` is below `head`."""

    events: list[EventRecord]
    next: int
    head: int
    hasMore: bool


def _query(ctx: Context, params: FeedParams, after: int | None = None) -> FeedQuery:
    return event_feed.feed_query(ctx.accounts, after=params.after if after is None else after, limit=params.limit,
                                 type=params.type, user=params.user, key=None if params.key is None else str(params.key))


class AdminEventsController(Controller):
    path = "/admin/events"
    tags = ["Admin"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]
    dependencies = {"params": Provide(feed_params, sync_to_thread=False)}

    @get("/", operation_id="v1AdminEvents", sync_to_thread=True)
    def list_events(self, ctx: Context, request: Request, state: State, params: FeedParams) -> EventPageOut:
        """Events with position > `after`, oldest first, at most `limit`: `{events, next, head, hasMore}`.
        Each event has the fields of an `events export` line; credential hashes are left out."""
        page = event_feed.read_feed(state.runtime.events, request.user, _query(ctx, params))
        return EventPageOut(page.events, page.next, page.head, page.has_more)

    @get("/stream", operation_id="v1AdminEventsStream", media_type=EVENT_STREAM,
         dependencies={"params": Provide(stream_params, sync_to_thread=False)})
    async def stream(
        self, ctx: Context, request: Request, state: State, params: FeedParams,
        last_event_id: Annotated[int | None, Parameter(header="Last-Event-ID", ge=0, le=JS_SAFE_MAX,
                                                       description="resume after this position (wins over after)")]
        = None,
    ) -> Stream:
        """Server-sent events: `id:` position, `event:` type, `data:` the event as in the page route;
        a `:` comment line when quiet."""
        query = await anyio.to_thread.run_sync(_query, ctx, params, last_event_id)
        settings = state.runtime.settings
        watch_shutdown()
        runtime, token, opened_by = state.runtime, presented_token(request), request.user

        async def still_allowed() -> bool:  # a revoked key, a demoted or suspended user: the stream ends
            now = await principal_for_token(runtime, token, True)
            return now is not None and now.user_id == opened_by.user_id and now.role is Role.ADMIN \
                and now.has_scope("admin")

        frames = follow(runtime.events, request.user, query, settings.feed_heartbeat_seconds,
                        settings.feed_stream_seconds, still_allowed)
        return Stream(frames, media_type=EVENT_STREAM, headers={**SSE_HEADERS, "Content-Type": EVENT_STREAM})


def sse_frame(record: EventRecord) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (record.position or 0, record.type.encode(), _encode(record))


async def follow(feed: EventFeed, principal: Principal, query: FeedQuery, heartbeat: float,
                 lifetime: float, still_allowed: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """Page after page from `query.after`, then whatever is stored next, until `lifetime` is up
    or the credential the stream was opened with stops being valid (checked every RECHECK_SECONDS)."""
    started = quiet_since = checked = time.monotonic()
    cursor, more = query.after, True
    yield b": events after %d\nretry: 1000\n\n" % cursor
    while time.monotonic() - started < lifetime and not DRAINING.is_set():
        if time.monotonic() - checked >= RECHECK_SECONDS:
            if not await still_allowed():
                yield b": credential no longer valid\n\n"
                return
            checked = time.monotonic()
        if more or await anyio.to_thread.run_sync(feed.head) > cursor:
            page = await anyio.to_thread.run_sync(
                event_feed.read_feed, feed, principal, msgspec.structs.replace(query, after=cursor))
            for record in page.events:
                yield sse_frame(record)
            if page.events:
                quiet_since = time.monotonic()
            cursor, more = page.next, page.has_more
            continue
        if time.monotonic() - quiet_since >= heartbeat:
            yield b": heartbeat\n\n"
            quiet_since = time.monotonic()
        await anyio.sleep(POLL_SECONDS)


# Set when the server is told to stop: open streams end, so the ASGI server's graceful shutdown
# (which waits for every open response) is not held up by a client that never hangs up.
DRAINING = threading.Event()
_watching = threading.Lock()


def watch_shutdown() -> None:
    """Chain a handler onto the server's SIGTERM/SIGINT handlers, once (main thread only: an
    in-process test client runs elsewhere and stops its streams by leaving)."""
    if threading.current_thread() is not threading.main_thread() or not _watching.acquire(blocking=False):
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if callable(previous):
            signal.signal(sig, _chained(previous))


def _chained(previous: Callable[[int, FrameType | None], object]) -> Callable[[int, FrameType | None], None]:
    def handler(sig: int, frame: FrameType | None) -> None:
        DRAINING.set()
        previous(sig, frame)

    return handler
