"""Erasure by crypto-shredding: destroy a user's data key, then record `User.Erased`.

The key goes first: once it is gone no process can load it again, and every process that
still holds it cached drops it when it reads the event (infrastructure/content_keys.py).
From then on the user's sealed content (chat prompts, replies, sources and attachment
names; profile bio and picture name) reads as erased wherever events are read, and each
read model overwrites the copies it holds when it applies the event. Should recording fail
after the key is gone (the content is unreadable already, the read models not yet
overwritten), erase again: it destroys nothing more and records the event."""

from __future__ import annotations

import msgspec

from application.ledger import Command, Context
from domain.errors import PermissionDenied, UserNotFound
from domain.users import User, check_reason, user_uuid


class EraseUser(Command, frozen=True, kw_only=True):
    user_id: int
    reason: str


class Erasure(msgspec.Struct, frozen=True):
    user_id: int
    username: str
    keys_destroyed: int
    position: int | None


def erase_user(ctx: Context, cmd: EraseUser) -> Erasure:
    """Admins only; a deleted user can be erased too (and may be erased again)."""
    if not cmd.principal.is_admin:
        raise PermissionDenied("Only admins can erase a user's data.")
    reason = check_reason(cmd.reason)
    user = ctx.ledger.find(user_uuid(cmd.user_id), User)
    if user is None:
        raise UserNotFound(cmd.user_id)
    views = [ctx.accounts, ctx.chats, ctx.audit]
    for view in views:
        view.check()  # nothing is destroyed while a read model could not overwrite its copies
    destroyed = ctx.keys.destroy(user_uuid(user.user_id))
    actor = cmd.actor()

    def attempt() -> int | None:
        fresh = ctx.ledger.load(user_uuid(cmd.user_id), User)
        fresh.erase(actor, reason)
        return ctx.save(fresh, project=views)

    position = ctx.retrying(attempt)
    return Erasure(user.user_id, user.username, destroyed, position)
