"""Invites: an admin or manager makes a code; someone claims it to become a `default` user and a
member of the invite's workspaces (those that still exist), as upstream."""

from __future__ import annotations

import secrets

import msgspec

from application.ids import take_id
from application.ledger import Command, Context, PublicCommand
from application.rows import InviteRow, UserRow
from application.users import require_multi_user
from domain.errors import InviteNotFound, NotFound, PermissionDenied
from domain.hashing import hash_secret
from domain.invites import Invite, invite_uuid
from domain.principal import Actor, Principal, Role
from domain.users import DIRECTORY_ID, User, UserDirectory, check_password
from domain.workspaces import Workspace, workspace_uuid

CODE_DISPLAY = 8
NOT_FOUND = "Invite not found."  # upstream's words, for the check route
NO_LONGER_VALID = "Invite is no longer valid."


class NewInvite(msgspec.Struct, frozen=True):
    invite: InviteRow
    code: str  # shown once


class CreateInvite(Command, frozen=True, kw_only=True):
    workspace_ids: list[int] = []


def _check_role(principal: Principal) -> None:
    if principal.role is Role.DEFAULT:
        raise PermissionDenied()


def create_invite(ctx: Context, cmd: CreateInvite) -> NewInvite:
    require_multi_user(ctx)
    _check_role(cmd.principal)
    code = secrets.token_urlsafe(18)
    actor = cmd.actor()

    def attempt() -> NewInvite:
        invite_id = take_id(ctx, "invites", actor)
        invite = Invite.create(actor, invite_id, hash_secret(code), code[:CODE_DISPLAY], cmd.workspace_ids)
        ctx.save(invite, project=[ctx.accounts])
        row = ctx.accounts.invite(invite_id)
        assert row is not None
        return NewInvite(row, code)

    return ctx.retrying(attempt)


class DisableInvite(Command, frozen=True, kw_only=True):
    invite_id: int


def disable_invite(ctx: Context, cmd: DisableInvite) -> None:
    require_multi_user(ctx)
    _check_role(cmd.principal)

    def attempt() -> None:
        invite = ctx.ledger.find(invite_uuid(cmd.invite_id), Invite)
        if invite is None or not invite.disable(cmd.actor()):
            raise InviteNotFound()
        ctx.save(invite, project=[ctx.accounts])

    ctx.retrying(attempt)


class ClaimInvite(PublicCommand, frozen=True, kw_only=True):
    code: str
    username: str
    password: str


def _workspaces_to_join(ctx: Context, invite: Invite) -> list[Workspace]:
    """The invite's workspaces that still exist (upstream skips the others silently)."""
    found = [ctx.ledger.find(workspace_uuid(w), Workspace) for w in invite.workspace_ids]
    return [w for w in found if w is not None and not w.deleted]


def claim_invite(ctx: Context, cmd: ClaimInvite) -> UserRow:
    """The new user is the actor of their own registration (there is no one else). The user, the
    claim and the memberships are saved together: all of them or none."""
    require_multi_user(ctx)
    row = ctx.accounts.invite_by_code(hash_secret(cmd.code))
    if row is None or row.status != "pending":
        raise NotFound("Invite not found or no longer valid.")
    password_hash = ctx.hasher.hash(check_password(cmd.password))

    def attempt() -> UserRow:
        invite = ctx.ledger.load(invite_uuid(row.id), Invite)
        directory = ctx.ledger.load(DIRECTORY_ID, UserDirectory)
        user_id = directory.next_user_id()
        actor = Actor(user_id=user_id, api_key_id=None, correlation_id=cmd.correlation_id)
        user = User.register(actor, user_id, cmd.username, Role.DEFAULT, password_hash)
        directory.enter(actor, user)
        invite.claim(actor, user_id)
        workspaces = _workspaces_to_join(ctx, invite)
        for workspace in workspaces:
            workspace.set_members(actor, {user_id}, replace=False)
        ctx.save(directory, user, invite, *workspaces, project=[ctx.accounts, ctx.library])
        claimed = ctx.accounts.user(user_id)
        assert claimed is not None
        return claimed

    return ctx.retrying(attempt)


# queries ------------------------------------------------------------------------------------
def invite_problem(ctx: Context, code: str) -> str | None:
    """Why this code cannot be claimed (upstream's words), or None while it is pending."""
    row = ctx.accounts.invite_by_code(hash_secret(code))
    if row is None:
        return NOT_FOUND
    return None if row.status == "pending" else NO_LONGER_VALID


def get_invite(ctx: Context, invite_id: int) -> InviteRow | None:
    return ctx.accounts.invite(invite_id)


def list_invites(ctx: Context, principal: Principal) -> list[InviteRow]:
    require_multi_user(ctx)
    _check_role(principal)
    return ctx.accounts.invites()
