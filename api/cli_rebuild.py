"""`ledgerllm audit verify`, `ledgerllm projections rebuild` and `ledgerllm verify`.

All three work beside a running server: the chain walk reads in batches up to the head it
saw first; a rebuild fills a scratch copy (SQLite files under DATA_DIR/.rebuild-<pid>, or a
PostgreSQL schema) and swaps its rows in with one transaction; verify rebuilds into a scratch
copy and compares it with the live read model row by row. Results go to stdout, progress to
stderr; a check that finds a difference exits with status 1."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from api.cli_events import open_store
from api.progress import Progress, say

_encode = msgspec.json.Encoder().encode


def cmd_audit_verify(args: argparse.Namespace) -> None:
    from api.cli_checkpoint import read_checkpoints
    from application.audit import parse_anchor
    from infrastructure.chain import verify_chain

    expect = parse_anchor(args.expect)
    with open_store() as store:
        checkpoints = read_checkpoints(store.settings, args.checkpoint, args.key) if args.checkpoint else []
        head = store.recorder.max_notification_id() or 0
        progress = Progress("verifying the chain", head)
        report = verify_chain(store.recorder, expect=expect, anchors=[(p, d) for _, p, d in checkpoints],
                              progress=progress.add)
        progress.done()
    anchor = f"{report.head_position}:{report.head_digest.hex()}"
    if args.json:
        print(_encode({
            "intact": report.intact, "checked": report.checked, "head_position": report.head_position,
            "head_digest": report.head_digest.hex(), "problem_count": report.problem_count,
            "problems": [{"position": p.position, "kind": p.kind, "detail": p.detail} for p in report.problems],
            "checkpoints": [{"file": name, "position": position} for name, position, _ in checkpoints],
        }).decode())
    elif report.intact:
        print(f"chain intact: {report.checked:,} events checked up to position {report.head_position}")
        print(f"anchor {anchor}")
        for name, position, _ in checkpoints:
            print(f"checkpoint {name} (position {position}): extended by today's chain")
        print("Keep the anchor somewhere else; `ledgerllm audit verify --expect ANCHOR` later also catches "
              "the newest events being removed.", file=sys.stderr)
    else:
        first = report.problems[0]
        print(f"TAMPERED: {report.problem_count} problem(s); the first at position {first.position} ({first.kind})")
        for p in report.problems:
            print(f"  position {p.position:>9}  {p.kind:<9} {p.detail}")
        if report.problem_count > len(report.problems):
            print(f"  ... and {report.problem_count - len(report.problems)} more")
        print("Restore from a backup taken before that position, or investigate with "
              f"`ledgerllm events show {first.position}`.", file=sys.stderr)
    if not report.intact:
        raise SystemExit(1)


def _names(args: argparse.Namespace) -> list[str]:
    from projections.catalog import PROJECTIONS

    if getattr(args, "all", False):
        return list(PROJECTIONS)
    if not args.names:
        if hasattr(args, "all"):  # rebuild: say which, on purpose
            raise SystemExit(f"error: name the read models to rebuild, or --all ({', '.join(PROJECTIONS)})")
        return list(PROJECTIONS)
    unknown = [n for n in args.names if n not in PROJECTIONS]
    if unknown:
        raise SystemExit(f"error: no read model named {', '.join(unknown)}; they are: {', '.join(PROJECTIONS)}")
    return list(dict.fromkeys(args.names))


class _Views:
    """The live and scratch runners a command opened, closed together."""

    def __init__(self) -> None:
        self.opened: list[Any] = []

    def keep(self, runner: Any) -> Any:
        self.opened.append(runner)
        return runner

    def close(self) -> None:
        for runner in self.opened:
            runner.view.datastore.close()


def _pair(store: Any, scratch: Any, name: str, views: _Views) -> tuple[Any, Any]:
    """The live runner of `name` and a projection of the same kind on a fresh scratch view."""
    from api.wiring import make_projection
    from projections.catalog import PROJECTIONS
    from projections.runner import ProjectionRunner

    live = views.keep(ProjectionRunner(store.ledger, make_projection(store.settings, name)))
    rebuilt = make_projection(store.settings, name, scratch.open(PROJECTIONS[name]))
    return live, rebuilt


@contextmanager
def _scratch_space(tag: str) -> Iterator[Callable[[str, str, bool], tuple[Any, Any, int, float]]]:
    """Yield `rebuild(name, label, stop_at_head)`: the live runner of a read model, a copy
    rebuilt from the events on a scratch view (with progress, and finished), the events read
    and the seconds taken. Every view opened is closed and the scratch space removed at the
    end, whatever happens."""
    from projections.decode_pool import worker_count
    from projections.rebuild import Scratch, SwapFailed, build

    with open_store() as store:
        scratch = Scratch(store.settings, tag=f"{tag}-{os.getpid()}")
        scratch.sweep()
        views = _Views()

        def rebuild(name: str, label: str, stop_at_head: bool) -> tuple[Any, Any, int, float]:
            live, projection = _pair(store, scratch, name, views)
            head = store.recorder.max_notification_id() or 0
            workers = worker_count(store.ledger, head, store.settings.rebuild_workers)
            if workers:
                say(f"{label}: {workers} worker process{'es' * (workers > 1)} decoding the events (REBUILD_WORKERS)")
            progress = Progress(label, head)
            rebuilt = views.keep(build(store.ledger, projection, live.view, stop=head if stop_at_head else None,
                                       progress=progress.add, workers=workers))
            progress.done()
            return live, rebuilt, progress.count, progress.seconds + _finish(name, rebuilt.view)

        try:
            yield rebuild
        except SwapFailed as e:
            raise SystemExit(f"error: {e}") from None
        finally:
            views.close()
            scratch.drop()


def _finish(name: str, view: Any) -> float:
    """Complete a filled scratch copy (`SqlView.finish`), saying so when there is work left;
    return the seconds it took."""
    indexes, statements = view.unfinished()
    work = [f"{indexes} indexes to make"] * bool(indexes) + [f"{statements:,} statements left for the end"] * bool(
        statements)
    if work:
        say(f"finishing {name}: {' and '.join(work)}")
    started = time.monotonic()
    view.finish()
    seconds = time.monotonic() - started
    if work:
        say(f"finishing {name}: done in {seconds:,.1f} s")
    return seconds


def cmd_projections_rebuild(args: argparse.Namespace) -> None:
    from projections.rebuild import swap_in

    with _scratch_space("rebuild") as rebuild:
        for name in _names(args):
            live, rebuilt, events, seconds = rebuild(name, f"rebuilding {name}", False)
            position = swap_in(live, rebuilt)
            print(f"{name}: rebuilt from {events:,} events in {seconds:.1f} s "
                  f"({events / max(seconds, 1e-6):,.0f} events/s); swapped in at position {position}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def cmd_verify(args: argparse.Namespace) -> None:
    from projections.rebuild import compare

    results = []
    with _scratch_space("verify") as rebuild:
        for name in _names(args):
            live, rebuilt, _, _ = rebuild(name, f"rebuilding {name} to compare", True)
            results.append(compare(live, rebuilt))
            _print_comparison(results[-1], args.json)
    differing = [r.projection for r in results if not r.same]
    if not args.json:
        if differing:
            print(f"{len(differing)} of {len(results)} read models differ from a rebuild: {', '.join(differing)}. "
                  "`ledgerllm projections rebuild NAME` replaces one with its rebuild.", file=sys.stderr)
        else:
            print(f"all {len(results)} read models equal their rebuild from the events", file=sys.stderr)
    if differing:
        raise SystemExit(1)


def _print_comparison(result: Any, as_json: bool) -> None:
    if as_json:
        print(_encode({
            "projection": result.projection, "position": result.position, "same": result.same,
            "tables": [{"table": t.table, "live_rows": t.live_rows, "rebuilt_rows": t.rebuilt_rows,
                        "differing": t.differing, "only_live": [_show(r) for r in t.only_live],
                        "only_rebuilt": [_show(r) for r in t.only_rebuilt]} for t in result.tables],
        }).decode())
        return
    counts = ", ".join(f"{t.table} {t.live_rows:,}" for t in result.tables)
    verdict = "same" if result.same else "DIFFERS"
    print(f"{result.projection:<10} {verdict:<8} at position {result.position}  (rows: {counts})")
    for t in result.tables:
        if t.same:
            continue
        print(f"  {t.table}: {t.live_rows:,} rows live, {t.rebuilt_rows:,} rebuilt; "
              f"{t.differing:,} distinct rows differ (last column: how many times)")
        for row in t.only_live:
            print(f"    - live only:    {_show(row)}")
        for row in t.only_rebuilt:
            print(f"    + rebuilt only: {_show(row)}")
