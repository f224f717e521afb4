"""Rebuilding and checking read models beside the live ones, while the server keeps serving.

A *scratch* view has the projection's tables in a place of its own: a directory of SQLite
files, or a PostgreSQL schema. `build` fills it from the events, `swap_in` replaces the live
tables' rows with it in one transaction (readers see the old rows or the new, never a mix),
and `compare` reads both row by row at the same position. A scratch copy is thrown away when
anything fails, so it is written without durability (SQLite: no journal, no syncs;
PostgreSQL: unlogged tables), filled without its secondary indexes and with its handlers'
resets and deletions left for the end (`SqlView.finish`, run before a swap or a comparison).

Positions only move forward: the swap waits until the scratch copy has seen at least the
live view's position (it catches up again and retries), so a server's runner never has to
go back. Tables a projection keeps across rebuilds (`kept`, e.g. the embedding cache) seed
the scratch copy and are merged back, so a rebuild never recomputes what it can look up."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventsourcing.persistence import MapperDeserialisationError
from psycopg.sql import SQL, Identifier

from projections.base import SqlProjection, Tx
from projections.decode_pool import DecodePool, worker_count
from projections.runner import ProjectionRunner

Progress = Callable[[int], None]
SWAP_ATTEMPTS = 20
REBUILD_BATCH = 5000


class SwapFailed(RuntimeError):
    pass


@dataclass
class Scratch:
    """Where scratch views live: `<data_dir>/.scratch-<tag>/` or the schema `ledgerllm_<tag>`."""

    settings: Any  # infrastructure.settings.Settings
    tag: str = field(default_factory=lambda: f"scratch{os.getpid()}")

    @property
    def postgres(self) -> bool:
        return bool(self.settings.database_url)

    @property
    def directory(self) -> Path:
        return self.settings.data_dir / f".{self.tag}"

    @property
    def schema(self) -> str:
        return f"ledgerllm_{self.tag}".lower().replace("-", "_")

    def open(self, projection: type[SqlProjection]) -> Any:
        from infrastructure.eventstore import open_view

        if not self.postgres:  # a leftover of an interrupted run is not trusted
            (self.directory / f"{projection.name}.db").unlink(missing_ok=True)
        else:
            self._drop_tables(projection)
        return open_view(self.settings, projection.name, projection.views(bulk=True), directory=self.directory,
                         schema=self.schema, bulk=True)

    def _drop_tables(self, projection: type[SqlProjection]) -> None:
        from infrastructure.eventstore import admin_connection

        with admin_connection(self.settings) as conn:
            for table in [*_all_tables(projection), f"{projection.name}_tracking"]:
                conn.execute(SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(Identifier(self.schema),
                                                                             Identifier(table)))

    def sweep(self) -> list[Path]:
        """Remove scratch directories left by runs that died (their process is gone)."""
        removed = []
        for leftover in self.settings.data_dir.glob(".*-[0-9]*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if leftover.is_dir() and leftover.name[1:].startswith(("rebuild-", "verify-")) and pid.isdigit() \
                    and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(leftover)
        return removed

    def drop(self) -> None:
        if self.postgres:
            from infrastructure.eventstore import drop_schema

            drop_schema(self.settings, self.schema)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _all_tables(projection: type[SqlProjection]) -> list[str]:
    return [*projection.tables, *projection.kept, *projection.meta_tables]


def build(app: Any, projection: SqlProjection, live_view: Any, stop: int | None = None,
          progress: Progress | None = None, workers: int | None = None) -> ProjectionRunner:
    """Fill `projection` (on a fresh scratch view) from the events up to `stop` (or the head)."""
    for table in projection.kept:
        _copy_rows(live_view, projection.view, table, merge=True)
    return fill(app, projection, stop, progress, workers)


def fill(app: Any, projection: SqlProjection, stop: int | None = None,
         progress: Progress | None = None, workers: int | None = None) -> ProjectionRunner:
    """Apply the events up to `stop` (or the head) to an empty view, as fast as it goes: large
    batches (a live runner keeps small ones, so a request waiting for its write waits less),
    decoded by `workers` processes (None: see `decode_pool.worker_count`) or else each read
    while the one before is applied. A bulk view still needs `finish`."""
    runner = ProjectionRunner(app, projection)
    runner.batch = REBUILD_BATCH
    runner.read_ahead = True
    first = runner.position() + 1
    head = app.recorder.max_notification_id() or 0
    last = head if stop is None else min(stop, head)
    workers = worker_count(app, last - first + 1, workers)
    if workers:
        _fill_in_parallel(app, runner, first, last, workers, progress)
    runner.catch_up(stop=stop, progress=progress)
    return runner


def _fill_in_parallel(app: Any, runner: ProjectionRunner, first: int, last: int, workers: int,
                      progress: Progress | None) -> None:
    """Apply the events from `first` to `last`, decoded by `workers` processes (see
    `projections.decode_pool`). A range they could not decode, or the view could not take
    whole, is caught up over here, event by event where it must; a stall there ends it."""
    with DecodePool(app, runner.projection.topics(), workers) as pool:
        for decoded in pool.ranges(first, last, REBUILD_BATCH):
            events = _constructed(app, decoded.events)
            if events is not None and runner.apply_decoded(decoded.start, decoded.stop, events):
                if progress:
                    progress(decoded.read)
                continue
            runner.catch_up(stop=decoded.stop, progress=progress)
            if runner.stall is not None:
                return


def _constructed(app: Any, decoded: list[tuple[int, str, bytes]] | None) -> list[tuple[Any, int]] | None:
    """The events a worker sent, as (event, position); None if it sent none or one will not
    construct (the range is then read again here, where the failure is recorded as a stall)."""
    if decoded is None:
        return None
    event = app.mapper.from_plain_state
    try:
        return [(event(topic, plain), position) for position, topic, plain in decoded]
    except MapperDeserialisationError:
        return None


def swap_in(live: ProjectionRunner, scratch: ProjectionRunner) -> int:
    """Replace the live view's rows with the scratch view's, in one transaction; return the
    position the live view then has."""
    app_name = live.app.name
    scratch.view.finish()
    for _ in range(SWAP_ATTEMPTS):
        position = scratch.catch_up()  # the scanned position: its rows reflect every event up to it
        with _swap_transaction(live.view, scratch.view) as (tx, live_table, scratch_table):
            if live.view.lock_and_position(tx, app_name) > position:
                continue  # the live view moved on meanwhile: catch up and try again
            cls = type(live.projection)
            for table in cls.tables:
                tx.execute(f"DELETE FROM {live_table(table)}")
                _insert_select(tx, live.view, scratch.view, live_table(table), scratch_table(table), table)
            for statement in cls.after_reset:
                tx.execute(statement)  # unqualified: the live tables (SQLite's main, PostgreSQL's search path)
            for table in cls.kept:
                _insert_select(tx, live.view, scratch.view, live_table(table), scratch_table(table), table,
                               merge=True)
            tracking = live_table(live.view.tracking_table)
            tx.execute(f"UPDATE {tracking} SET notification_id = ? WHERE application_name = ?", (position, app_name))
            return position
    raise SwapFailed(f"the live {live.name} view kept moving ahead of its rebuilt copy; try again when "
                     "fewer events arrive")


@contextmanager
def _swap_transaction(live_view: Any, scratch_view: Any, write: bool = True,
                      ) -> Iterator[tuple[Tx, Callable[[str], str], Callable[[str], str]]]:
    """One transaction that sees the live tables and the scratch ones (`write=False`: a
    consistent snapshot of both, for reading)."""
    if live_view.postgres:
        def name_in(schema: str) -> Callable[[str], str]:
            return lambda table: f'"{schema}"."{table}"'

        with live_view.datastore.transaction(commit=write) as cursor:
            if not write:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield Tx(cursor, True), name_in(live_view.datastore.schema), name_in(scratch_view.datastore.schema)
        return
    conn = sqlite3.connect(live_view.datastore.pool.db_name, timeout=30, isolation_level=None)
    try:
        conn.row_factory = _dict_row
        conn.execute("ATTACH DATABASE ? AS scratch", (scratch_view.datastore.pool.db_name,))
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield Tx(conn.cursor(), False), (lambda t: f"main.{t}"), (lambda t: f"scratch.{t}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")  # also after a `continue` in the caller: nothing was written
    finally:
        conn.close()


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row)}


def _columns(view: Any, table: str) -> list[str]:
    with view.read() as tx:
        if view.postgres:
            rows = tx.all("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                          "AND table_name = ? ORDER BY ordinal_position", (view.datastore.schema, table))
            return [r["column_name"] for r in rows]
        return [r["name"] for r in tx.all(f"PRAGMA table_info({table})")]


def _insert_select(tx: Tx, live_view: Any, scratch_view: Any, target: str, source: str, table: str,
                   merge: bool = False) -> None:
    cols = ", ".join(f'"{c}"' for c in _columns(scratch_view, table))
    conflict = " WHERE true ON CONFLICT DO NOTHING" if merge else ""  # WHERE: SQLite would read ON as a join
    tx.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source}{conflict}")


def _copy_rows(source_view: Any, target_view: Any, table: str, merge: bool) -> None:
    """Copy a table's rows from one view to another of the same backend."""
    cols = ", ".join(f'"{c}"' for c in _columns(target_view, table))
    conflict = " WHERE true ON CONFLICT DO NOTHING" if merge else ""  # WHERE: SQLite would read ON as a join
    if target_view.postgres:
        with target_view.write() as tx:
            tx.execute(f'INSERT INTO "{target_view.datastore.schema}"."{table}" ({cols}) SELECT {cols} '
                       f'FROM "{source_view.datastore.schema}"."{table}"{conflict}')
        return
    conn = sqlite3.connect(target_view.datastore.pool.db_name, timeout=30, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS source", (source_view.datastore.pool.db_name,))
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM source.{table}{conflict}")
        conn.execute("COMMIT")
    finally:
        conn.close()


# comparing ---------------------------------------------------------------------------------

@dataclass
class TableDiff:
    table: str
    live_rows: int = 0
    rebuilt_rows: int = 0
    only_live: list[tuple[Any, ...]] = field(default_factory=list)  # (row..., times)
    only_rebuilt: list[tuple[Any, ...]] = field(default_factory=list)
    differing: int = 0  # distinct rows whose count differs, on either side

    @property
    def same(self) -> bool:
        return self.differing == 0 and self.live_rows == self.rebuilt_rows


@dataclass
class Comparison:
    projection: str
    position: int
    tables: list[TableDiff]

    @property
    def same(self) -> bool:
        return all(t.same for t in self.tables)


def compare(live: ProjectionRunner, rebuilt: ProjectionRunner, keep: int = 10) -> Comparison:
    """Compare every table of the live view with the rebuilt one, row by row (as multisets,
    in the database: nothing is loaded whole), at one position.

    Both are read in one snapshot of one connection. The rebuilt copy must have applied
    exactly the events the live one has: when a server moved the live view meanwhile, the
    copy catches up to that position and the comparison starts again."""
    app_name = live.app.name
    live.catch_up()
    rebuilt.view.finish()
    target = None
    for _ in range(SWAP_ATTEMPTS):
        scanned = rebuilt.catch_up(stop=target)
        with _swap_transaction(live.view, rebuilt.view, write=False) as (tx, live_table, rebuilt_table):
            tracking = live_table(live.view.tracking_table)
            position = tx.scalar(f"SELECT notification_id FROM {tracking} WHERE application_name = ?",
                                 (app_name,)) or 0
            if position > scanned and _relevant_between(live, scanned, position):
                target = position
                continue
            if position < scanned and _relevant_between(live, position, scanned):
                live.catch_up()
                continue
            diffs = [_compare_table(tx, rebuilt.view, live_table(t), rebuilt_table(t), t, keep)
                     for t in type(live.projection).tables]
            return Comparison(live.name, max(position, scanned), diffs)
    raise SwapFailed(f"the live {live.name} view kept moving while it was compared; try again when fewer "
                     "events arrive")


def _relevant_between(runner: ProjectionRunner, after: int, upto: int) -> bool:
    topics = list(runner.projection.handled_topics)
    return bool(runner.app.recorder.select_notifications(after + 1, 1, stop=upto, topics=topics))


def _compare_table(tx: Tx, rebuilt_view: Any, live: str, rebuilt: str, table: str, keep: int) -> TableDiff:
    diff = TableDiff(table)
    cols = ", ".join(f'"{c}"' for c in _columns(rebuilt_view, table))
    diff.live_rows = tx.scalar(f"SELECT COUNT(*) FROM {live}")
    diff.rebuilt_rows = tx.scalar(f"SELECT COUNT(*) FROM {rebuilt}")
    for source, other, into in ((live, rebuilt, diff.only_live), (rebuilt, live, diff.only_rebuilt)):
        missing = (f"SELECT {cols}, COUNT(*) AS times FROM {source} GROUP BY {cols} EXCEPT "
                   f"SELECT {cols}, COUNT(*) AS times FROM {other} GROUP BY {cols}")
        diff.differing += tx.scalar(f"SELECT COUNT(*) FROM ({missing}) AS d")
        for row in tx.all(f"{missing} LIMIT {int(keep)}"):
            into.append(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row.values()))
    return diff
