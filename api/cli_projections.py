"""`ledgerllm projections status|retry|skip`: where each read model stands, and the repairs
of one stopped at an event it cannot apply (see the README's runbook)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


def projections_status(args: argparse.Namespace) -> None:
    """Each read model's stored position, the head of the store, how far behind it is, and
    where it stopped if it is stalled. A view records its position at least every 1,000 events
    it ignores, so an idle view can read a little behind while being complete."""
    from api.cli_events import open_store
    from infrastructure.eventstore import open_view
    from projections.catalog import PROJECTIONS
    from projections.stall import StallRecord

    with open_store() as store:
        head = store.recorder.max_notification_id() or 0
        rows = []
        for projection in PROJECTIONS.values():
            view = open_view(store.settings, projection.name, projection.views())
            try:
                position = view.max_tracking_id(store.ledger.name) or 0
                stall = StallRecord(view, projection.name).get()
            finally:
                view.datastore.close()
            rows.append({"projection": projection.name, "position": position, "head": head,
                         "behind": head - position, "stalled": stall is not None,
                         "stall": None if stall is None else msgspec.to_builtins(stall)})
    for row in rows:
        if args.json:
            print(_encode(row).decode())
            continue
        line = f"{row['projection']:<10} position {row['position']:>9}  head {row['head']:>9}  behind {row['behind']:>7}"
        stall = row["stall"]
        if stall:
            line += f"  STALLED at {stall['position']} ({stall['topic']}): {stall['error']}"
        print(line)
    if any(r["stalled"] for r in rows):
        print("a stalled read model stops at the event it cannot apply: fix the cause and run "
              "`ledgerllm projections retry NAME`, or `ledgerllm projections skip NAME POSITION --reason TEXT`",
              file=sys.stderr)


def _runner(rt: Any, name: str) -> Any:
    from projections.catalog import PROJECTIONS

    if name not in PROJECTIONS:
        raise SystemExit(f"error: no read model named {name!r}; one of: {', '.join(PROJECTIONS)}")
    return rt.runner(name)


def cmd_projections_retry(args: argparse.Namespace) -> None:
    """Apply the stalled event again (after an upgrade that fixes the code or adds an upcaster)."""
    from api.cli import cli_runtime

    rt = cli_runtime()
    try:
        runner = _runner(rt, args.name)
        before = runner.stall
        position = runner.retry()
        head = rt.ctx.ledger.recorder.max_notification_id() or 0
        if runner.stall is not None:
            raise SystemExit(f"error: {args.name} is still stalled at event {runner.stall.position} "
                             f"({runner.stall.topic}): {runner.stall.error}")
    finally:
        rt.close()
    what = f"the event at {before.position} applied; " if before else "it was not stalled; "
    print(f"{args.name}: {what}now at position {position} of {head}", file=sys.stderr)


def cmd_projections_skip(args: argparse.Namespace) -> None:
    """Pass the event at POSITION without applying it, recording who decided and why."""
    from api.cli import cli_correlation_id, cli_principal, cli_runtime
    from application.projections import SkipEvent, skip_event
    from domain.errors import DomainError

    rt = cli_runtime()
    try:
        runner = _runner(rt, args.name)
        stall = runner.stall
        if stall is None or stall.position != args.position:
            where = "it is not stalled" if stall is None else f"it is stalled at {stall.position}"
            raise SystemExit(f"error: {args.name} is not stalled at event {args.position} ({where}); "
                             "only the event a read model stopped at can be skipped")
        try:
            recorded = skip_event(rt.ctx, SkipEvent(principal=cli_principal(rt.ctx), correlation_id=cli_correlation_id(),
                                                    projection=args.name, position=args.position,
                                                    topic=stall.topic, reason=args.reason))
        except DomainError as e:
            raise SystemExit(f"error: {e}") from None
        position = runner.catch_up()
        head = rt.ctx.ledger.recorder.max_notification_id() or 0
        still = runner.stall
    finally:
        rt.close()
    print(f"{args.name}: event {args.position} skipped (recorded at position {recorded}); now at position "
          f"{position} of {head}" + (f"; stalled again at {still.position}: {still.error}" if still else ""),
          file=sys.stderr)
    if still:
        raise SystemExit(1)
