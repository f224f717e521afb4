"""`ledgerllm webhooks add|list|remove|replay-parked`: the CLI door onto application.webhooks
(the same use cases as `/api/v1/admin/webhooks`), acting as the owner admin."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_webhook_commands(sub: Any) -> None:
    from api.cli import lazy_command

    hooks = sub.add_parser("webhooks", help="POST every new event (or those of some types) to URLs, signed")
    actions = hooks.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a webhook; prints only its signing secret on stdout (shown once)")
    add.add_argument("url", metavar="URL", help="http(s); loopback or private hosts only if LINK_ALLOWLIST names them")
    add.add_argument("--type", action="append", dest="types", metavar="T",
                     help="an event type (ApiKey.Issued) or prefix (ApiKey); repeat for several; default: every event")
    lst = actions.add_parser("list", help="webhooks and where their deliveries stand")
    lst.add_argument("--all", action="store_true", help="include removed webhooks")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    remove = actions.add_parser("remove", help="remove a webhook by id; its deliveries stop")
    remove.add_argument("id", type=int, metavar="ID")
    replay = actions.add_parser("replay-parked", help="send parked webhooks again from the event they stopped at")
    replay.add_argument("id", type=int, nargs="?", metavar="ID", help="only this webhook (default: every parked one)")
    for parser, name in ((add, "cmd_add"), (lst, "cmd_list"), (remove, "cmd_remove"), (replay, "cmd_replay_parked")):
        parser.set_defaults(func=lazy_command("cli_webhooks", name))


def _run(use: Any) -> Any:
    from api.cli import cli_correlation_id, cli_principal, cli_runtime

    rt = cli_runtime()
    try:
        return use(rt.ctx, cli_principal(rt.ctx), cli_correlation_id())
    finally:
        rt.close()


def cmd_add(args: argparse.Namespace) -> None:
    from application.webhooks import AddWebhook, add_webhook

    new = _run(lambda ctx, who, cid: add_webhook(ctx, AddWebhook(principal=who, correlation_id=cid, url=args.url,
                                                                 types=tuple(args.types or ()))))
    print(new.secret)
    types = ", ".join(new.webhook.types) or "every event"
    print(f"added webhook {new.webhook.id} -> {new.webhook.url} ({types}), from position {new.webhook.start}; "
          "the secret above signs its deliveries and is shown once", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> None:
    from application.webhooks import list_webhooks

    rows = []
    for listing in _run(lambda ctx, who, cid: list_webhooks(ctx, who, include_removed=args.all)):
        w, s = listing.webhook, listing.state
        rows.append({"id": w.id, "url": w.url, "types": list(w.types), "start": w.start,
                     "position": w.start if s is None else s.position, "delivered": 0 if s is None else s.delivered,
                     "failures": 0 if s is None else s.failures, "parked": s is not None and s.parked,
                     "last_error": None if s is None else s.last_error, "removed_at": w.removed_at})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*rows[0].keys()) if rows else Table("id", "url")
    for row in rows:
        table.add_row(*("" if v is None else " ".join(v) if isinstance(v, list) else str(v) for v in row.values()))
    Console().print(table)


def cmd_remove(args: argparse.Namespace) -> None:
    from application.webhooks import RemoveWebhook, remove_webhook

    _run(lambda ctx, who, cid: remove_webhook(ctx, RemoveWebhook(principal=who, correlation_id=cid,
                                                                 webhook_id=args.id)))
    print(f"webhook {args.id} removed", file=sys.stderr)


def cmd_replay_parked(args: argparse.Namespace) -> None:
    from application.webhooks import ReplayParked, replay_parked

    resumed = _run(lambda ctx, who, cid: replay_parked(ctx, ReplayParked(principal=who, correlation_id=cid,
                                                                         webhook_id=args.id)))
    for webhook_id, position in resumed.items():
        print(f"webhook {webhook_id}: sending again from the event after position {position}")
    if not resumed:
        print("no parked webhook" + (f" with id {args.id}" if args.id else ""), file=sys.stderr)
