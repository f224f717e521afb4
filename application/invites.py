"""Invites: an admin or manager makes a code; someone claims it to become a `default` user."""

from __future__ import annotations

import json
import secrets
from typing import Any

import msgspec

from application.ids import take_id
from application.ledger import Context
from application.rows import UserRow
from application.users import require_multi_user
from domain.hashing import hash_secret
from domain.errors import InviteNotFound, NotFound, PermissionDenied
from domain.invites import Invite, invite_uuid
from domain.principal import Actor, Principal, Role
from domain.users import DIRECTORY_ID, User, UserDirectory, check_password

CODE_DISPLAY = 8


class InviteRow(msgspec.Struct, frozen=True):
    id: int
    display_prefix: str
    status: str
    claimed_by: dict[str, Any] | None
    workspace_ids: list[int]
    created_by: dict[str, Any] | None
    created_at: str
    updated_at: str


class NewInvite(msgspec.Struct, frozen=True):
    invite: InviteRow
    code: str  # shown once


class CreateInvite(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    workspace_ids: list[int] = []


def _check_role(principal: Principal) -> None:
    if principal.role is Role.DEFAULT:
        raise PermissionDenied()


def create_invite(ctx: Context, cmd: CreateInvite) -> NewInvite:
    require_multi_user(ctx)
    _check_role(cmd.principal)
    code = secrets.token_urlsafe(18)
    actor = cmd.principal.actor(cmd.correlation_id)

    def attempt() -> NewInvite:
        seq, invite_id = take_id(ctx, "invites", actor)
        invite = Invite.create(actor, invite_id, hash_secret(code), code[:CODE_DISPLAY], cmd.workspace_ids)
        ctx.save(seq, invite, project=[ctx.accounts])
        return NewInvite(get_invite(ctx, invite_id), code)  # type: ignore[arg-type]

    return ctx.retrying(attempt)


class DisableInvite(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    invite_id: int


def disable_invite(ctx: Context, cmd: DisableInvite) -> None:
    require_multi_user(ctx)
    _check_role(cmd.principal)

    def attempt() -> None:
        invite: Invite | None = ctx.ledger.find(invite_uuid(cmd.invite_id))
        if invite is None or not invite.disable(cmd.principal.actor(cmd.correlation_id)):
            raise InviteNotFound()
        ctx.save(invite, project=[ctx.accounts])

    ctx.retrying(attempt)


class ClaimInvite(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    username: str
    password: str
    correlation_id: str


def claim_invite(ctx: Context, cmd: ClaimInvite) -> UserRow:
    """The new user is the actor of their own registration (there is no one else)."""
    require_multi_user(ctx)
    row = _invite_by_code(ctx, cmd.code)
    if row is None or row["status"] != "pending":
        raise NotFound("Invite not found or no longer valid.")
    password_hash = ctx.hasher.hash(check_password(cmd.password))

    def attempt() -> UserRow:
        invite: Invite = ctx.ledger.repository.get(invite_uuid(row["id"]))
        directory: UserDirectory = ctx.ledger.repository.get(DIRECTORY_ID)
        user_id = directory.next_user_id()
        actor = Actor(user_id=user_id, api_key_id=None, correlation_id=cmd.correlation_id)
        user = User.register(actor, user_id, cmd.username, Role.DEFAULT, password_hash)
        directory.enter(actor, user)
        invite.claim(actor, user_id)
        ctx.save(directory, user, invite, project=[ctx.accounts])
        return ctx.accounts.user(user_id)  # type: ignore[return-value]

    return ctx.retrying(attempt)


# queries ------------------------------------------------------------------------------------
def _invite_by_code(ctx: Context, code: str) -> dict[str, Any] | None:
    with ctx.accounts.view.read() as tx:
        return tx.one("SELECT id, status FROM invites WHERE code_hash = ?", (hash_secret(code),))


def invite_is_valid(ctx: Context, code: str) -> bool:
    row = _invite_by_code(ctx, code)
    return row is not None and row["status"] == "pending"


def _invite_rows(ctx: Context, where: str = "", params: tuple = ()) -> list[InviteRow]:
    with ctx.accounts.view.read() as tx:
        rows = tx.all(f"SELECT * FROM invites {where} ORDER BY id", params)
        names = {u["id"]: u["username"] for u in tx.all("SELECT id, username FROM users")}

    def who(user_id: int | None) -> dict[str, Any] | None:
        return None if user_id is None else {"id": user_id, "username": names.get(user_id)}

    return [
        InviteRow(
            id=r["id"], display_prefix=r["display_prefix"], status=r["status"],
            claimed_by=who(r["claimed_by"]), workspace_ids=json.loads(r["workspace_ids"]),
            created_by=who(r["created_by"]), created_at=r["created_at"], updated_at=r["updated_at"],
        )
        for r in rows
    ]


def get_invite(ctx: Context, invite_id: int) -> InviteRow | None:
    rows = _invite_rows(ctx, "WHERE id = ?", (invite_id,))
    return rows[0] if rows else None


def list_invites(ctx: Context, principal: Principal) -> list[InviteRow]:
    require_multi_user(ctx)
    _check_role(principal)
    return _invite_rows(ctx)
