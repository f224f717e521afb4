"""Use cases on the library's in-memory event store and in-memory SQLite views: the real
handlers and projections with nothing on disk but blobs, and a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api.wiring import Runtime, open_runtime
from application.users import principal_for
from domain.principal import Principal
from infrastructure.settings import load_settings
from tests.support.clock import FakeClock


@contextmanager
def memory_runtime(tmp_path: Path, clock: FakeClock | None = None, **settings: Any) -> Iterator[Runtime]:
    runtime = open_runtime(load_settings({}, data_dir=tmp_path / "data", in_memory=True, embed_model=False,
                                         **settings), clock=clock or FakeClock())
    try:
        yield runtime
    finally:
        runtime.close()


def owner(runtime: Runtime) -> Principal:
    ctx = runtime.ctx
    row = ctx.accounts.user(ctx.accounts.owner_id())
    assert row is not None
    return principal_for(ctx, row)


def new_events(runtime: Runtime, after: int) -> list[Any]:
    """The events stored after position `after`, decoded, in order."""
    ledger = runtime.ctx.ledger
    return [ledger.mapper.to_domain_event(n) for n in ledger.recorder.select_notifications(after + 1, 10_000)]


def head(runtime: Runtime) -> int:
    return runtime.ctx.ledger.recorder.max_notification_id() or 0
