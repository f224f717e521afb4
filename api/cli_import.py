"""`ledgerllm events import FILE`: an `events export` file (or stdin) appended to an empty store.

Each line becomes the domain event it was exported from, checked on the way: a known topic,
its fields, and each aggregate's versions running 1, 2, 3, ... The events go in as they are
(the same stored bytes as the app writes), BATCH at a time, one transaction each, in file
order; nothing else may write to the store meanwhile. The read models catch up on the next
start; the document blobs are not in an export and are copied by hand.

Only the standard library is imported at module level, so `ledgerllm --help` stays fast."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from api.cli_backup import read_model_positions
from api.progress import Progress, fail, say

BATCH = 1000


class BadLine(Exception):
    pass


def _aggregate_topic(cls: type) -> str:
    """The aggregate class a Created event starts: the class it is nested in."""
    from eventsourcing.domain import Aggregate
    from eventsourcing.utils import get_topic, resolve_topic

    module, _, qualname = get_topic(cls).partition(":")
    owner = resolve_topic(f"{module}:{qualname.rpartition('.')[0]}") if "." in qualname else None
    if not (isinstance(owner, type) and issubclass(owner, Aggregate)):
        raise BadLine(f"cannot tell which aggregate {qualname} creates")
    return get_topic(owner)


class EventReader:
    """Export lines back to domain events, checking each aggregate's versions run 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.versions: dict[Any, int] = {}
        self.blobs: set[str] = set()

    def event(self, raw: bytes) -> Any:
        import dataclasses
        from uuid import UUID

        import msgspec
        from eventsourcing.domain import DomainEvent
        from eventsourcing.utils import TopicError, resolve_topic

        from domain.documents import Document

        try:
            record = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            raise BadLine(f"not JSON ({e})") from None
        if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
            raise BadLine("not an `events export` record (an object with topic, aggregate_id, version, payload)")
        topic = record.get("topic")
        if not isinstance(topic, str) or not topic.startswith("domain."):
            raise BadLine(f"topic {topic!r} is not a ledgerllm event")
        try:
            cls = resolve_topic(topic)
            aggregate_id, version = UUID(str(record.get("aggregate_id"))), record.get("version")
        except (TopicError, ValueError) as e:
            raise BadLine(f"unknown topic or aggregate id ({e})") from None
        if not (isinstance(cls, type) and issubclass(cls, DomainEvent) and dataclasses.is_dataclass(cls)):
            raise BadLine(f"topic {topic} is not an event class")
        expected = self.versions.get(aggregate_id, 0) + 1
        if version != expected:
            raise BadLine(f"aggregate {aggregate_id} has version {version!r} where {expected} was due "
                          "(import a whole export, not a part of one)")
        given = {**record["payload"], "originator_id": aggregate_id, "originator_version": version}
        for name in ("timestamp", "actor_user_id", "actor_api_key_id", "correlation_id"):
            given[name] = record.get(name)
        fields = [f.name for f in dataclasses.fields(cls)]
        if "originator_topic" in fields:
            given["originator_topic"] = _aggregate_topic(cls)
        unknown = set(record["payload"]) - set(fields)
        if unknown:
            raise BadLine(f"{topic} has no field(s) {', '.join(sorted(unknown))}")
        try:  # in the class's field order, as the app builds its events: the stored bytes come out the same
            event = msgspec.convert({n: given[n] for n in fields if n in given}, type=cls, strict=False)
        except msgspec.ValidationError as e:
            raise BadLine(f"{topic}: {e}") from None
        self.versions[aggregate_id] = version
        if isinstance(event, Document.Uploaded):
            self.blobs.update((event.content_hash, event.text_hash))
        return event


def _lines(path: str) -> tuple[IO[bytes], bool]:
    if path == "-":
        return sys.stdin.buffer, False
    try:
        return open(path, "rb"), True
    except OSError as e:
        raise fail(f"cannot read {path}: {e.strerror}") from None


def cmd_events_import(args: argparse.Namespace) -> None:
    from api.cli_events import Store
    from infrastructure.blobs import BlobStore
    from infrastructure.pg_blobs import blob_store

    stream, owned = _lines(args.file)
    store = Store()
    try:
        head = store.recorder.max_notification_id() or 0
        if head:
            raise fail(f"the store is not empty (events up to position {head}); import only into an empty "
                       "store: a new DATA_DIR, or an empty database in DATABASE_URL.")
        stale = {name: p for name, p in read_model_positions(store.settings).items() if p}
        if stale:
            raise fail(f"the store has no events but read models at positions {stale}; remove them "
                       "(their .db files, or their tables) first.")
        reader, imported = EventReader(), 0
        progress = Progress("imported", None)
        last = 0
        batch: list[Any] = []
        for number, raw in enumerate(stream, 1):
            if not raw.strip():
                continue
            try:
                batch.append(store.ledger.mapper.to_stored_event(reader.event(raw)))
            except BadLine as e:
                written = (f"The {imported} events before its batch were imported (start again with an empty "
                           "store)" if imported else "Nothing was imported")
                raise fail(f"line {number}: {e}.\n{written}; fix the file, then import it into an empty "
                           "store.") from None
            if len(batch) == BATCH:
                last = _insert(store, batch, last, progress)
                imported += BATCH
        if batch:
            imported += len(batch)
            last = _insert(store, batch, last, progress)
        seconds = progress.done()
        _check_alone(store, last)
    finally:
        if owned:
            stream.close()
        store.close()
    files, shared = BlobStore(store.settings.data_dir / "blobs"), blob_store(store.settings)
    missing = sum(1 for d in reader.blobs if not files.exists(d) and not shared.exists(d))
    shared.close()
    print(f"imported {imported} events in {seconds:.1f} s ({imported / max(seconds, 1e-6):,.0f} events/s); "
          "the read models catch up on the next start (see `ledgerllm projections status`)")
    if missing:
        say(f"warning: {missing} of {len(reader.blobs)} document blobs are not under {store.settings.data_dir}/blobs;"
            " copy the source's DATA_DIR/blobs here (from PostgreSQL: `ledgerllm blobs export DIR` on the source)"
            " before starting the server (the text is not in the export)")


def _check_alone(store: Any, last: int) -> None:
    if (store.recorder.max_notification_id() or 0) != last:
        raise fail("something else wrote to the store during the import; stop every server and "
                   "`ledgerllm` command on it, then import into an empty store again.")


def _insert(store: Any, batch: list[Any], last: int, progress: Progress) -> int:
    """One transaction per batch, in file order; returns the position of its last event."""
    _check_alone(store, last)
    ids = store.recorder.insert_events(batch)
    progress.add(len(batch))
    batch.clear()
    return ids[-1]

