"""API keys: issue, revoke and list them (authentication, which turns a presented secret into a
Principal, is `application/authentication.py`)."""

from __future__ import annotations

import secrets
from datetime import timedelta

import msgspec

from application.ids import take_id
from application.ledger import Command, Context
from application.views import AccountsView, ApiKeysView
from application.rows import ApiKeyRow, UserRow
from domain.apikeys import DISPLAY_CHARS, SECRET_PREFIX, SECRET_RANDOM_BYTES, ApiKey, api_key_uuid, check_scopes
from domain.errors import ApiKeyNotFound, InvalidInput, PermissionDenied, UserNotFound
from domain.hashing import hash_secret
from domain.timefmt import iso



def new_secret() -> tuple[str, str]:
    """A new key (`sk-` and 28 URL-safe characters, 31 in all, as upstream's) and its display prefix."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)
    return secret, secret[: len(SECRET_PREFIX) + DISPLAY_CHARS]


class KeyRow(msgspec.Struct, frozen=True):
    """An API key as listings show it: the key, its owner and whether it works now."""

    key: ApiKeyRow
    owner: UserRow | None
    active: bool


class NewApiKey(msgspec.Struct, frozen=True):
    key: ApiKeyRow
    owner: UserRow
    secret: str  # shown once, in this response only
    position: int | None


class CreateApiKey(Command, frozen=True, kw_only=True):
    user_id: int | None = None  # default: the caller
    name: str | None = None
    scopes: tuple[str, ...] | None = None
    expires_in: timedelta | None = None
    rate_limit: int | None = None


def create_api_key(ctx: Context, cmd: CreateApiKey) -> NewApiKey:
    owner_id = cmd.principal.user_id if cmd.user_id is None else cmd.user_id
    if owner_id != cmd.principal.user_id and not cmd.principal.is_admin:
        raise PermissionDenied("Only admins can issue keys to other users.")
    owner = ctx.accounts.user(owner_id)
    if owner is None or owner.deleted:
        raise UserNotFound(owner_id)
    if owner.suspended:
        raise InvalidInput("That user is suspended; unsuspend them before issuing a key.")
    if cmd.expires_in is not None and cmd.expires_in <= timedelta(0):
        raise InvalidInput("Expiry must be in the future.")
    scopes = check_scopes(cmd.scopes)
    expires_at = ctx.clock.now() + cmd.expires_in if cmd.expires_in else None
    secret, prefix = new_secret()
    actor = cmd.actor()

    def attempt() -> NewApiKey:
        key_id = take_id(ctx, "api_keys", actor)
        key = ApiKey.issue(
            actor, key_id, owner_id, hash_secret(secret), prefix,
            name=cmd.name, scopes=scopes, expires_at=expires_at, rate_limit=cmd.rate_limit,
        )
        position = ctx.save(key, project=[ctx.api_keys])
        row = ctx.api_keys.key(key_id)
        assert row is not None
        return NewApiKey(row, owner, secret, position)

    return ctx.retrying(attempt)


class RevokeApiKey(Command, frozen=True, kw_only=True):
    key_id: int


def revoke_api_key(ctx: Context, cmd: RevokeApiKey) -> bool:
    """Revoke at once on every process: saved, projected, dropped from the shared cache."""
    actor = cmd.actor()

    def attempt() -> tuple[bool, str]:
        key: ApiKey | None = ctx.ledger.find(api_key_uuid(cmd.key_id))
        if key is None:
            raise ApiKeyNotFound()
        if key.user_id != cmd.principal.user_id and not cmd.principal.is_admin:
            raise ApiKeyNotFound()  # don't reveal other users' key ids
        changed = key.revoke(actor)
        if changed:  # stored even while the listing is stalled: authentication reads the key itself then
            ctx.save(key, project=live_views(ctx.api_keys))
        return changed, key.secret_hash

    changed, secret_hash = ctx.retrying(attempt)
    ctx.cache.drop([secret_hash])
    return changed


# queries ------------------------------------------------------------------------------------
def _with_owners(ctx: Context, keys: list[ApiKeyRow]) -> list[KeyRow]:
    owners = ctx.accounts.users(k.user_id for k in keys)
    now = iso(ctx.clock.now())
    return [KeyRow(k, owners.get(k.user_id), k.active_at(now)) for k in keys]


def get_key(ctx: Context, key_id: int) -> KeyRow | None:
    key = ctx.api_keys.key(key_id)
    return None if key is None else _with_owners(ctx, [key])[0]


def list_api_keys(ctx: Context, user_id: int | None = None, include_inactive: bool = False) -> list[KeyRow]:
    keys = _with_owners(ctx, ctx.api_keys.keys(user_id))
    return keys if include_inactive else [k for k in keys if k.active]


def keys_of(ctx: Context, user_id: int) -> list[ApiKey]:
    """The user's live key aggregates (for revoking them together with the user)."""
    return [ctx.ledger.repository.get(api_key_uuid(k.key.id)) for k in list_api_keys(ctx, user_id)]


def forget_keys_of(ctx: Context, user_id: int) -> None:
    ctx.cache.drop(ctx.api_keys.hashes_of_user(user_id))


def live_views(*views: AccountsView | ApiKeysView) -> list[AccountsView | ApiKeysView]:
    """The views a revocation or suspension waits for: those not stalled. Such a command is
    stored even while its read model is stalled, since authentication then reads the
    aggregates themselves (`auth_reads_store`) and the read model applies it once repaired."""
    return [v for v in views if not v.stalled()]
