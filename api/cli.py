"""The `ledgerllm` command: serve, and the operator's door onto the same use cases as HTTP.

The CLI acts as the owner admin (events record it, with no key); stdout carries only the
result (`KEY=$(ledgerllm api-keys create)` works), messages go to stderr."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def cli_runtime() -> Any:
    from api.wiring import open_runtime
    from infrastructure.settings import load_settings

    return open_runtime(load_settings())


def cli_principal(ctx: Any) -> Any:
    from application.users import owner_principal

    return owner_principal(ctx)


def cli_correlation_id() -> str:
    return f"cli-{uuid.uuid4().hex}"


def _password() -> tuple[str, bool]:
    """A password piped on stdin, or a generated one (then printed once)."""
    if not sys.stdin.isatty():
        piped = sys.stdin.readline().rstrip("\n")
        if piped:
            return piped, False
    return secrets.token_urlsafe(15), True


def user_id_named(ctx: Any, username: str) -> int:
    """The id of the user called `username`; exits saying how to list users if there is none."""
    row = ctx.accounts.user_named(username)
    if row is None:
        raise SystemExit(f"error: no user named {username!r}; see `ledgerllm users list`.")
    return row.id


def cmd_serve(args: argparse.Namespace) -> None:
    import logging

    import uvicorn

    if args.host:
        os.environ["HOST"] = args.host
    if args.port:
        os.environ["PORT"] = str(args.port)
    if args.read_only:
        os.environ["READ_ONLY"] = "1"  # the workers read it too
    from infrastructure.settings import load_settings

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.workers > 1:
        cli_runtime().close()  # create tables and the owner once, before workers race to do it
    mode = ", read-only" if settings.read_only else ""
    print(f"ledgerllm serving on http://{settings.host}:{settings.port} (data: {settings.data_dir}{mode})", file=sys.stderr)
    # Forwarded headers are believed only from the proxies named in FORWARDED_ALLOW_IPS (uvicorn
    # would otherwise trust them on every loopback connection, and login limits are per address).
    uvicorn.run("api.main:app", factory=True, host=settings.host, port=settings.port, workers=args.workers,
                log_level="warning", access_log=False, lifespan="on",
                proxy_headers=bool(settings.forwarded_allow_ips), forwarded_allow_ips=settings.forwarded_allow_ips or None)


def cmd_users_create(args: argparse.Namespace) -> None:
    from application.users import CreateUser, create_user

    rt = cli_runtime()
    try:
        ctx = rt.ctx
        if not ctx.accounts.is_multi_user():
            raise SystemExit("error: the instance is in single-user mode; run "
                             "`ledgerllm users enable-multi-user USERNAME` first.")
        password, generated = _password()
        row = create_user(ctx, CreateUser(principal=cli_principal(ctx), correlation_id=cli_correlation_id(),
                                          username=args.name, password=password, role=args.role))
        print(f"created user {row.username} (id {row.id}, role {row.role})", file=sys.stderr)
        if generated:
            print(password)
            print("the password above is shown once; store it now", file=sys.stderr)
    finally:
        rt.close()


def cmd_enable_multi_user(args: argparse.Namespace) -> None:
    from application.users import EnableMultiUser, enable_multi_user

    rt = cli_runtime()
    try:
        password, generated = _password()
        row = enable_multi_user(rt.ctx, EnableMultiUser(
            principal=cli_principal(rt.ctx), correlation_id=cli_correlation_id(), username=args.username, password=password))
        print(f"multi-user mode enabled; the owner is now admin {row.username!r}", file=sys.stderr)
        if generated:
            print(password)
    finally:
        rt.close()


def cmd_users_list(args: argparse.Namespace) -> None:
    rt = cli_runtime()
    try:
        rows = rt.ctx.accounts.active_users()
    finally:
        rt.close()
    _table(args, ["id", "username", "role", "suspended", "created_at"],
           [[u.id, u.username, u.role, u.suspended, u.created_at] for u in rows])


def cmd_users_set_password(args: argparse.Namespace) -> None:
    from application.users import UpdateUser, update_user

    rt = cli_runtime()
    try:
        password, generated = _password()
        update_user(rt.ctx, UpdateUser(principal=cli_principal(rt.ctx), correlation_id=cli_correlation_id(),
                                       user_id=user_id_named(rt.ctx, args.name), password=password))
        if generated:
            print(password)
        print(f"password of {args.name} changed; their old sessions are revoked", file=sys.stderr)
    finally:
        rt.close()


def cmd_keys_create(args: argparse.Namespace) -> None:
    from application.apikeys import CreateApiKey, create_api_key
    from domain.apikeys import parse_duration

    rt = cli_runtime()
    try:
        ctx = rt.ctx
        new = create_api_key(ctx, CreateApiKey(
            principal=cli_principal(ctx), correlation_id=cli_correlation_id(),
            user_id=user_id_named(ctx, args.user) if args.user else None, name=args.name,
            scopes=tuple(args.scope) if args.scope else None,
            expires_in=parse_duration(args.expires_in) if args.expires_in else None,
            rate_limit=args.rate_limit,
        ))
        print(new.secret)
        print(f"created API key {new.key.id} for {new.owner.username} ({new.key.display_prefix}...); "
              "the secret above is shown once", file=sys.stderr)
    finally:
        rt.close()


def cmd_keys_list(args: argparse.Namespace) -> None:
    from application.apikeys import list_api_keys

    rt = cli_runtime()
    try:
        keys = list_api_keys(rt.ctx, include_inactive=args.all)
    finally:
        rt.close()
    _table(args, ["id", "prefix", "name", "user", "scopes", "expires_at", "revoked_at", "active"],
           [[k.key.id, k.key.display_prefix, k.key.name, k.owner.username if k.owner else None, " ".join(k.key.scopes),
             k.key.expires_at, k.key.revoked_at, k.active] for k in keys])


def cmd_keys_revoke(args: argparse.Namespace) -> None:
    from application.apikeys import RevokeApiKey, revoke_api_key

    rt = cli_runtime()
    try:
        changed = revoke_api_key(rt.ctx, RevokeApiKey(principal=cli_principal(rt.ctx), correlation_id=cli_correlation_id(),
                                                      key_id=args.id))
        print(f"API key {args.id} {'revoked' if changed else 'was already revoked'}", file=sys.stderr)
        _explain_unreached_cache(rt)
    finally:
        rt.close()


def _explain_unreached_cache(rt: Any) -> None:
    """After a stored revocation: say so if the shared cache could not be told at once."""
    try:
        rt.ctx.cache.flush()
    except Exception as e:  # the cache adapter's CacheUnreachable; the event is stored either way
        print(f"note: {e}. The change is stored: running servers refuse the key as soon as they see "
              "it (they keep retrying Redis and trust no cached key meanwhile).", file=sys.stderr)


def _table(args: argparse.Namespace, columns: list[str], rows: list[list[Any]]) -> None:
    if args.json:
        for row in rows:
            print(json.dumps(dict(zip(columns, row))))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


def lazy_command(module: str, name: str) -> Callable[[argparse.Namespace], None]:
    """Command `name` of api/`module`.py, imported only when it runs (the parser stays fast)."""

    def run(args: argparse.Namespace) -> None:
        getattr(importlib.import_module(f"api.{module}"), name)(args)

    return run


def _lazy(name: str) -> Callable[[argparse.Namespace], None]:
    return lazy_command("cli_events", name)


def _add_events_commands(sub: Any) -> None:
    events = sub.add_parser("events", help="read the event store").add_subparsers(dest="action", required=True)
    tail = events.add_parser("tail", help="the newest events, oldest first; --follow keeps printing (Ctrl-C stops)")
    tail.add_argument("--follow", "-f", action="store_true")
    tail.add_argument("--limit", "-n", type=int, default=20)
    show = events.add_parser("show", help="one event by position, or an aggregate's whole history by its id")
    show.add_argument("target", metavar="POSITION|AGGREGATE_ID")
    export = events.add_parser("export", help="every event as one JSON object per line on stdout")
    imported = events.add_parser("import", help="append an `events export` file (FILE, or - for stdin) to an "
                                 "empty store")
    imported.add_argument("file", metavar="FILE")
    imported.set_defaults(func=lazy_command("cli_import", "cmd_events_import"))
    projections = sub.add_parser("projections", help="the read models").add_subparsers(dest="action", required=True)
    status = projections.add_parser("status", help="each read model's position, the store's head, the lag")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=lazy_command("cli_projections", "projections_status"))
    retry = projections.add_parser("retry", help="apply again the event a stalled read model stopped at "
                                                 "(after an upgrade that fixes the cause)")
    retry.add_argument("name", metavar="NAME")
    retry.set_defaults(func=lazy_command("cli_projections", "cmd_projections_retry"))
    skip = projections.add_parser("skip", help="let a stalled read model pass the event it stopped at; "
                                               "recorded as an event with you and the reason")
    skip.add_argument("name", metavar="NAME")
    skip.add_argument("position", type=int, metavar="POSITION")
    skip.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the audit log)")
    skip.set_defaults(func=lazy_command("cli_projections", "cmd_projections_skip"))
    rebuild = projections.add_parser(
        "rebuild", help="rebuild read models from the events beside the live ones, then swap them in "
                        "(safe while the server runs)")
    rebuild.add_argument("names", nargs="*", metavar="NAME", help="accounts, api_keys, library, vectors, chats, audit_log")
    rebuild.add_argument("--all", action="store_true", help="every read model")
    rebuild.set_defaults(func=lazy_command("cli_rebuild", "cmd_projections_rebuild"))
    verify = sub.add_parser("verify", help="rebuild every read model into a scratch copy and compare it row by row "
                                           "with the live one; exit 1 and a diff when they differ")
    verify.add_argument("names", nargs="*", metavar="NAME", help="only these read models")
    verify.add_argument("--json", action="store_true", help="one JSON object per read model")
    verify.set_defaults(func=lazy_command("cli_rebuild", "cmd_verify"))
    audit = sub.add_parser("audit", help="the audit log (every event: who, which key, which request), newest first; "
                                         "`audit verify` checks the store's digest chain")
    audit_sub = audit.add_subparsers(dest="audit_action", metavar="verify|checkpoint|public-key")
    chain = audit_sub.add_parser("verify", help="walk the digest chain; name the first position where a stored "
                                                "event was altered, inserted or removed (exit 1)")
    chain.add_argument("--expect", metavar="POSITION:DIGEST", help="an anchor printed by an earlier verify")
    chain.add_argument("--checkpoint", metavar="FILE", nargs="+", default=[], help="signed checkpoints it must extend")
    chain.add_argument("--key", metavar="VERIFIER_KEY", help="their verifier key (text or file); default: this store's")
    chain.add_argument("--json", action="store_true")
    chain.set_defaults(func=lazy_command("cli_rebuild", "cmd_audit_verify"))
    checkpoint = audit_sub.add_parser("checkpoint", help="verify the chain, then sign its head (Ed25519)")
    checkpoint.add_argument("--out", metavar="FILE", help="write the checkpoint here instead of stdout")
    checkpoint.set_defaults(func=lazy_command("cli_checkpoint", "cmd_audit_checkpoint"))
    audit_sub.add_parser("public-key", help="print the verifier key for this store's checkpoints").set_defaults(
        func=lazy_command("cli_checkpoint", "cmd_audit_public_key"))
    audit.add_argument("--key", help="API key id")
    audit.add_argument("--limit", type=int, default=100, help="1 to 1000")
    audit.add_argument("--offset", type=int, default=0)
    for parser in (tail, audit):
        parser.add_argument("--type", help="an event type like ApiKey.Issued, or a prefix like ApiKey")
        parser.add_argument("--user", help="acting user: id or username")
    for parser in (export, audit):
        parser.add_argument("--since", help="ISO 8601 time or event position (inclusive)")
        parser.add_argument("--until", help="ISO 8601 time or event position (inclusive)")
    for parser in (tail, show, audit):
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
    for parser, name in ((tail, "cmd_tail"), (show, "cmd_show"), (export, "cmd_export"), (audit, "cmd_audit")):
        parser.set_defaults(func=_lazy(name))


def _add_ops_commands(sub: Any) -> None:
    backup = sub.add_parser("backup", help="copy the store, blobs and secrets to a new DIR (safe while serving)")
    backup.add_argument("dir", metavar="DIR", help="a new or empty directory")
    backup.set_defaults(func=lazy_command("cli_backup", "cmd_backup"))
    restore = sub.add_parser("restore", help="check a backup, then put it in place (stop the server first)")
    restore.add_argument("dir", metavar="DIR", help="a directory made by `ledgerllm backup`")
    restore.add_argument("--force", action="store_true",
                         help="replace existing data; it moves to DATA_DIR/../<name>.before-restore-<time>")
    restore.set_defaults(func=lazy_command("cli_restore", "cmd_restore"))
    blobs = sub.add_parser("blobs", help="document blobs").add_subparsers(dest="action", required=True)
    migrate = blobs.add_parser("migrate", help="copy the blob files under DATA_DIR/blobs into PostgreSQL "
                                               "(DATABASE_URL), checking each digest; safe to run again")
    migrate.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
    migrate.set_defaults(func=lazy_command("cli_blobs", "cmd_blobs_migrate"))
    export_blobs = blobs.add_parser("export", help="write every blob in PostgreSQL as files under DIR "
                                                   "(DATA_DIR/blobs's layout)")
    export_blobs.add_argument("dir", metavar="DIR")
    export_blobs.set_defaults(func=lazy_command("cli_blobs", "cmd_blobs_export"))
    from api.cli_webhooks import add_webhook_commands  # the parser only; its commands import lazily
    add_webhook_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerllm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (HOST, PORT, DATA_DIR, DATABASE_URL, REDIS_URL)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--read-only", action="store_true",
                       help="serve the store as it is now (e.g. a replay DIR): every change is refused (READ_ONLY=1)")
    serve.set_defaults(func=cmd_serve)
    replay = sub.add_parser("replay", help="build the read models as they were at a past moment into DIR, "
                                           "to serve with --read-only")
    replay.add_argument("--until", required=True, metavar="POSITION|TIME",
                        help="an event position, or an ISO 8601 time (the last event at or before it)")
    replay.add_argument("--into", required=True, metavar="DIR", help="a new or empty directory")
    replay.set_defaults(func=lazy_command("cli_replay", "cmd_replay"))

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="action", required=True)
    create = users.add_parser("create", help="create a user; password from stdin, else generated and printed")
    create.add_argument("name")
    create.add_argument("--role", default="default", choices=["admin", "manager", "default"])
    create.set_defaults(func=cmd_users_create)
    lst = users.add_parser("list", help="list users")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_users_list)
    rs = users.add_parser("revoke-sessions", help="invalidate every session token of a user")
    rs.add_argument("name")
    rs.set_defaults(func=lazy_command("cli_users", "cmd_users_revoke_sessions"))
    sp = users.add_parser("set-password", help="set a password (stdin, else generated and printed once)")
    sp.add_argument("name")
    sp.set_defaults(func=cmd_users_set_password)
    mum = users.add_parser("enable-multi-user", help="switch to multi-user mode; the owner gets this name")
    mum.add_argument("username")
    mum.set_defaults(func=cmd_enable_multi_user)
    erase = users.add_parser("erase", help="erase a user's content (chats, profile) by destroying their data key")
    erase.add_argument("name", help="username (also of a deleted user)")
    erase.add_argument("--reason", required=True, help="why (recorded in the User.Erased event)")
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(func=lazy_command("cli_users", "cmd_users_erase"))

    keys = sub.add_parser("api-keys", help="manage API keys").add_subparsers(dest="action", required=True)
    kc = keys.add_parser("create", help="issue a key; prints only the secret on stdout")
    kc.add_argument("--user", help="owner's username (default: the owner admin)")
    kc.add_argument("--name", help="a label")
    kc.add_argument("--expires-in", help="e.g. 30d, 12h, 15m")
    kc.add_argument("--scope", action="append", choices=["read", "write", "chat", "admin"],
                    help="repeat for several; default: full access")
    kc.add_argument("--rate-limit", type=int, help="requests per minute")
    kc.set_defaults(func=cmd_keys_create)
    kl = keys.add_parser("list", help="list keys (masked)")
    kl.add_argument("--all", action="store_true", help="include revoked and expired keys")
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(func=cmd_keys_list)
    kr = keys.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("id", type=int)
    kr.set_defaults(func=cmd_keys_revoke)
    _add_events_commands(sub)
    _add_ops_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    # Everything the commands and the server create (SQLite files and journals, blobs, faiss
    # files, backups) is readable by this user only, whatever the shell's umask.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    from domain.errors import DomainError
    from infrastructure.settings import SettingsError

    try:
        func(args)
    except (DomainError, SettingsError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
