"""Users: first-start install, create, update, delete, multi-user mode, and user queries."""

from __future__ import annotations

import msgspec

from application.ledger import Command, Context
from application.rows import UserRow
from domain.errors import (
    InvalidInput, MultiUserModeRequired, PermissionDenied, UserNotFound,
)
from domain.principal import Actor, Principal, Role
from domain.system import SYSTEM_ID, System
from domain.users import DIRECTORY_ID, User, UserDirectory, check_password, check_role, user_uuid


# queries ------------------------------------------------------------------------------------
def require_multi_user(ctx: Context) -> None:
    if not ctx.accounts.is_multi_user():
        raise MultiUserModeRequired()


def principal_for(ctx: Context, user: UserRow) -> Principal:
    return Principal(user_id=user.id, username=user.username, role=Role(user.role))


def owner_principal(ctx: Context) -> Principal:
    """The owner admin, as the CLI acts. Read from the aggregates while `accounts` is stalled,
    so an operator can still revoke keys then."""
    if not ctx.accounts.stalled():
        owner = ctx.accounts.user(ctx.accounts.owner_id())
        assert owner is not None, "no owner: the store was never installed"
        return principal_for(ctx, owner)
    system = ctx.ledger.load(SYSTEM_ID, System)
    user = ctx.ledger.load(user_uuid(system.owner_user_id), User)
    return Principal(user_id=user.user_id, username=user.username, role=user.role)


# first start --------------------------------------------------------------------------------
def install(ctx: Context, owner_password: str | None = None) -> bool:
    """Create the directory, the owner admin and the system record once. True if it did.

    The owner gets a password only when one is given (AUTH_TOKEN, as upstream's single-user
    password); otherwise it signs in with keys made by `ledgerllm api-keys create`."""
    if ctx.ledger.find(SYSTEM_ID) is not None:
        return False
    actor = Actor(user_id=1, api_key_id=None, correlation_id="install")
    directory = UserDirectory.open(actor)
    password_hash = ctx.hasher.hash(owner_password) if owner_password else None
    owner = User.register(actor, 1, ctx.owner_username, Role.ADMIN, password_hash)
    directory.enter(actor, owner)
    system = System.install(actor, owner_user_id=owner.user_id)
    try:
        ctx.save(directory, owner, system, project=[ctx.accounts])
    except Exception:
        if ctx.ledger.find(SYSTEM_ID) is None:  # not a concurrent first start: a real failure
            raise
        return False
    return True


# commands -----------------------------------------------------------------------------------
class CreateUser(Command, frozen=True, kw_only=True):
    username: str
    password: str
    role: str = "default"
    daily_message_limit: int | None = None
    bio: str = ""


def check_can_grant(principal: Principal, role: Role) -> None:
    """Managers manage only managers and default users (reference §3.5); default users nothing."""
    if principal.role is Role.ADMIN:
        return
    if principal.role is Role.MANAGER and role in (Role.MANAGER, Role.DEFAULT):
        return
    raise PermissionDenied("Your role cannot manage users with this role.")


def create_user(ctx: Context, cmd: CreateUser) -> UserRow:
    role = check_role(cmd.role)
    check_can_grant(cmd.principal, role)
    password_hash = ctx.hasher.hash(check_password(cmd.password))
    actor = cmd.actor()

    def attempt() -> UserRow:
        directory = ctx.ledger.load(DIRECTORY_ID, UserDirectory)
        user = User.register(
            actor, directory.next_user_id(), cmd.username, role, password_hash,
            cmd.daily_message_limit, cmd.bio,
        )
        directory.enter(actor, user)
        ctx.save(directory, user, project=[ctx.accounts])
        return ctx.accounts.user(user.user_id)  # type: ignore[return-value]

    return ctx.retrying(attempt)


class UpdateUser(Command, frozen=True, kw_only=True):
    """Only the fields that are set change (AnythingLLM's partial update)."""

    user_id: int
    username: str | None = None
    password: str | None = None
    role: str | None = None
    suspended: bool | None = None
    daily_message_limit: int | None | msgspec.UnsetType = msgspec.UNSET
    bio: str | None = None
    pfp_filename: str | None | msgspec.UnsetType = msgspec.UNSET


def _load_user(ctx: Context, user_id: int) -> User:
    user = ctx.ledger.find(user_uuid(user_id), User)
    if user is None or user.deleted:
        raise UserNotFound(user_id)
    return user


def update_user(ctx: Context, cmd: UpdateUser) -> UserRow:
    actor = cmd.actor()
    new_role = check_role(cmd.role) if cmd.role is not None else None
    password_hash = ctx.hasher.hash(check_password(cmd.password)) if cmd.password is not None else None

    def attempt() -> UserRow:
        user = _load_user(ctx, cmd.user_id)
        check_can_grant(cmd.principal, user.role)
        directory = ctx.ledger.load(DIRECTORY_ID, UserDirectory)
        if cmd.username is not None:
            old = user.username
            user.rename(actor, cmd.username)
            directory.rename(actor, user.user_id, old, user.username)
        if new_role is not None:
            check_can_grant(cmd.principal, new_role)
            user.change_role(actor, new_role)
        if cmd.suspended is not None:
            if cmd.suspended and user.user_id == cmd.principal.user_id:
                raise InvalidInput("You cannot suspend yourself.")
            (user.suspend if cmd.suspended else user.unsuspend)(actor)
        directory.note_admin_status(actor, user)
        if password_hash is not None:
            user.change_password(actor, password_hash)
        if cmd.bio is not None or cmd.daily_message_limit is not msgspec.UNSET or cmd.pfp_filename is not msgspec.UNSET:
            row = ctx.accounts.user(user.user_id)
            assert row is not None
            user.update_profile(
                actor,
                row.daily_message_limit if cmd.daily_message_limit is msgspec.UNSET else cmd.daily_message_limit,
                row.bio or "" if cmd.bio is None else cmd.bio,
                row.pfp_filename if cmd.pfp_filename is msgspec.UNSET else cmd.pfp_filename,
            )
        ctx.save(directory, user, project=[ctx.accounts])
        return ctx.accounts.user(user.user_id)  # type: ignore[return-value]

    row = ctx.retrying(attempt)
    from application.apikeys import forget_keys_of

    forget_keys_of(ctx, row.id)  # role, suspension and sessions take effect at once
    return row


class DeleteUser(Command, frozen=True, kw_only=True):
    user_id: int


def delete_user(ctx: Context, cmd: DeleteUser) -> None:
    """Delete a user and revoke their keys; the owner of the last active admin seat stays."""
    from application.apikeys import forget_keys_of, keys_of

    if cmd.user_id == cmd.principal.user_id:
        raise InvalidInput("You cannot delete yourself.")
    actor = cmd.actor()

    def attempt() -> None:
        user = _load_user(ctx, cmd.user_id)
        check_can_grant(cmd.principal, user.role)
        directory = ctx.ledger.load(DIRECTORY_ID, UserDirectory)
        directory.leave(actor, user)
        user.delete(actor)
        keys = [k for k in keys_of(ctx, user.user_id) if k.revoke(actor, "user deleted")]
        ctx.save(directory, user, *keys, project=[ctx.accounts, ctx.api_keys])

    ctx.retrying(attempt)
    forget_keys_of(ctx, cmd.user_id)


class RevokeSessions(Command, frozen=True, kw_only=True):
    user_id: int


def revoke_sessions(ctx: Context, cmd: RevokeSessions) -> None:
    """Every session token (JWT) issued to the user so far stops working."""
    actor = cmd.actor()

    def attempt() -> None:
        user = _load_user(ctx, cmd.user_id)
        if user.user_id != cmd.principal.user_id:
            check_can_grant(cmd.principal, user.role)
        user.revoke_sessions(actor)
        ctx.save(user, project=[ctx.accounts])

    ctx.retrying(attempt)


class EnableMultiUser(Command, frozen=True, kw_only=True):
    username: str
    password: str


def enable_multi_user(ctx: Context, cmd: EnableMultiUser) -> UserRow:
    """The owner becomes the first admin with a login (upstream creates a new admin and hands it
    the owner-less data; here the owner already owns everything, so it only gets the name)."""
    if not cmd.principal.is_admin:
        raise PermissionDenied()
    password_hash = ctx.hasher.hash(check_password(cmd.password))
    actor = cmd.actor()

    def attempt() -> UserRow:
        system = ctx.ledger.load(SYSTEM_ID, System)
        system.enable_multi_user_mode(actor)
        owner = _load_user(ctx, system.owner_user_id)
        directory = ctx.ledger.load(DIRECTORY_ID, UserDirectory)
        old = owner.username
        owner.rename(actor, cmd.username)
        directory.rename(actor, owner.user_id, old, owner.username)
        owner.change_password(actor, password_hash)
        ctx.save(system, directory, owner, project=[ctx.accounts])
        return ctx.accounts.user(owner.user_id)  # type: ignore[return-value]

    return ctx.retrying(attempt)


class UpdatePreferences(Command, frozen=True, kw_only=True):
    values: dict[str, str | None]


def update_preferences(ctx: Context, cmd: UpdatePreferences) -> dict[str, str | None]:
    from domain.system import MANAGER_PREFERENCE_LABELS

    if cmd.principal.role is Role.DEFAULT:
        raise PermissionDenied()
    values = cmd.values
    if cmd.principal.role is Role.MANAGER:
        values = {k: v for k, v in values.items() if k in MANAGER_PREFERENCE_LABELS}
    actor = cmd.actor()

    def attempt() -> dict[str, str | None]:
        system = ctx.ledger.load(SYSTEM_ID, System)
        known = system.update_preferences(actor, values)
        if known:
            ctx.save(system, project=[ctx.accounts])
        return known

    return ctx.retrying(attempt)
