"""`ledgerllm users revoke-sessions NAME` and `ledgerllm users erase NAME --reason TEXT`."""

from __future__ import annotations

import argparse
import json
import sys

from api.cli import user_id_named, cli_correlation_id, cli_principal, cli_runtime


def cmd_users_revoke_sessions(args: argparse.Namespace) -> None:
    from application.users import RevokeSessions, revoke_sessions

    rt = cli_runtime()
    try:
        revoke_sessions(rt.ctx, RevokeSessions(principal=cli_principal(rt.ctx), correlation_id=cli_correlation_id(),
                                               user_id=user_id_named(rt.ctx, args.name)))
        print(f"every session of {args.name} is revoked", file=sys.stderr)
    finally:
        rt.close()


def cmd_users_erase(args: argparse.Namespace) -> None:
    """Destroy the user's data key and record User.Erased; the read models have overwritten
    their copies when it returns. A deleted user is found by name too (an active user of that name first)."""
    from application.erasure import EraseUser, erase_user

    rt = cli_runtime()
    try:
        user_id = rt.ctx.accounts.user_id_named(args.name)
        if user_id is None:
            raise SystemExit(f"error: no user named {args.name!r}; see `ledgerllm users list`.")
        done = erase_user(rt.ctx, EraseUser(principal=cli_principal(rt.ctx), correlation_id=cli_correlation_id(),
                                            user_id=user_id, reason=args.reason))
    finally:
        rt.close()
    if args.json:
        print(json.dumps({"userId": done.user_id, "username": done.username, "keysDestroyed": done.keys_destroyed,
                          "position": done.position}))
    else:
        print(f"erased the content of {done.username} (user {done.user_id}): {done.keys_destroyed} data key(s) "
              f"destroyed, User.Erased at position {done.position}", file=sys.stderr)
