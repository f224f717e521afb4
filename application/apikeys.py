"""API keys: issue, revoke, list, and turn a presented secret into a Principal."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError

from application.ledger import Context, log
from application.ports import CachedPrincipal
from application.users import get_user
from domain.apikeys import DISPLAY_CHARS, SECRET_PREFIX, SECRET_RANDOM_BYTES, ApiKey, api_key_uuid, check_scopes
from domain.errors import ApiKeyNotFound, InvalidInput, PermissionDenied, UserNotFound
from domain.principal import ALL_SCOPES, Actor, Principal, Role
from domain.sequence import Sequence, sequence_uuid
from domain.users import User

def hash_secret(secret: str) -> str:
    """SHA-256 is enough for a long random secret; it is never a password."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> tuple[str, str]:
    """A new key (`sk-` and 28 URL-safe characters, 31 in all, as upstream's) and its display prefix."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)
    return secret, secret[: len(SECRET_PREFIX) + DISPLAY_CHARS]


def take_id(ctx: Context, name: str, actor: Actor) -> tuple[Sequence, int]:
    """The next public integer id of `name`; save the returned sequence with the new aggregate."""
    seq = ctx.ledger.find(sequence_uuid(name)) or Sequence.start(actor, name)
    return seq, seq.take(actor)


class KeyRow(msgspec.Struct, frozen=True):
    id: int
    name: str | None
    display_prefix: str
    user_id: int
    username: str | None
    user_role: str | None
    scopes: tuple[str, ...]
    expires_at: str | None
    rate_limit: int | None
    created_by: int
    created_at: str
    updated_at: str
    revoked_at: str | None
    expired: bool

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.expired and not _past(self.expires_at)


class NewApiKey(msgspec.Struct, frozen=True):
    key: KeyRow
    secret: str  # shown once, in this response only
    position: int | None


class CreateApiKey(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    user_id: int | None = None  # default: the caller
    name: str | None = None
    scopes: tuple[str, ...] | None = None
    expires_in: timedelta | None = None
    rate_limit: int | None = None


def create_api_key(ctx: Context, cmd: CreateApiKey) -> NewApiKey:
    owner_id = cmd.principal.user_id if cmd.user_id is None else cmd.user_id
    if owner_id != cmd.principal.user_id and not cmd.principal.is_admin:
        raise PermissionDenied("Only admins can issue keys to other users.")
    owner = get_user(ctx, owner_id)
    if owner is None or owner.deleted:
        raise UserNotFound(owner_id)
    if owner.suspended:
        raise InvalidInput("That user is suspended; unsuspend them before issuing a key.")
    if cmd.expires_in is not None and cmd.expires_in <= timedelta(0):
        raise InvalidInput("Expiry must be in the future.")
    scopes = check_scopes(cmd.scopes)
    expires_at = datetime.now(timezone.utc) + cmd.expires_in if cmd.expires_in else None
    secret, prefix = new_secret()
    actor = cmd.principal.actor(cmd.correlation_id)

    def attempt() -> NewApiKey:
        seq, key_id = take_id(ctx, "api_keys", actor)
        key = ApiKey.issue(
            actor, key_id, owner_id, hash_secret(secret), prefix,
            name=cmd.name, scopes=scopes, expires_at=expires_at, rate_limit=cmd.rate_limit,
        )
        position = ctx.save(seq, key, project=[ctx.api_keys])
        row = get_key(ctx, key_id)
        assert row is not None
        return NewApiKey(row, secret, position)

    return ctx.retrying(attempt)


class RevokeApiKey(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    key_id: int


def revoke_api_key(ctx: Context, cmd: RevokeApiKey) -> bool:
    """Revoke at once on every process: saved, projected, dropped from the shared cache."""
    actor = cmd.principal.actor(cmd.correlation_id)

    def attempt() -> tuple[bool, str]:
        key: ApiKey | None = ctx.ledger.find(api_key_uuid(cmd.key_id))
        if key is None:
            raise ApiKeyNotFound()
        if key.user_id != cmd.principal.user_id and not cmd.principal.is_admin:
            raise ApiKeyNotFound()  # don't reveal other users' key ids
        changed = key.revoke(actor)
        if changed:
            ctx.save(key, project=[ctx.api_keys])
        return changed, key.secret_hash

    changed, secret_hash = ctx.retrying(attempt)
    ctx.cache.drop([secret_hash])
    return changed


# queries ------------------------------------------------------------------------------------
_KEY_SELECT = """SELECT id, name, display_prefix, user_id, scopes, expires_at, rate_limit,
    created_by, created_at, updated_at, revoked_at, expired FROM api_keys"""


def _past(moment: str | None) -> bool:
    return moment is not None and moment <= _now_iso()


def _now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _key_rows(ctx: Context, rows: list[dict[str, Any]]) -> list[KeyRow]:
    user_ids = {r["user_id"] for r in rows}
    users: dict[int, dict[str, Any]] = {}
    if user_ids:
        with ctx.accounts.view.read() as tx:
            marks = ",".join("?" * len(user_ids))
            for u in tx.all(f"SELECT id, username, role FROM users WHERE id IN ({marks})", tuple(user_ids)):
                users[u["id"]] = u
    out = []
    for r in rows:
        u = users.get(r["user_id"], {})
        out.append(KeyRow(
            id=r["id"], name=r["name"], display_prefix=r["display_prefix"], user_id=r["user_id"],
            username=u.get("username"), user_role=u.get("role"), scopes=tuple(r["scopes"].split()),
            expires_at=r["expires_at"], rate_limit=r["rate_limit"], created_by=r["created_by"],
            created_at=r["created_at"], updated_at=r["updated_at"], revoked_at=r["revoked_at"],
            expired=bool(r["expired"]),
        ))
    return out


def get_key(ctx: Context, key_id: int) -> KeyRow | None:
    with ctx.api_keys.view.read() as tx:
        rows = tx.all(_KEY_SELECT + " WHERE id = ?", (key_id,))
    keys = _key_rows(ctx, rows)
    return keys[0] if keys else None


def list_api_keys(ctx: Context, user_id: int | None = None, include_inactive: bool = False) -> list[KeyRow]:
    sql, params = _KEY_SELECT, ()
    if user_id is not None:
        sql, params = sql + " WHERE user_id = ?", (user_id,)
    with ctx.api_keys.view.read() as tx:
        rows = tx.all(sql + " ORDER BY id", params)
    keys = _key_rows(ctx, rows)
    return keys if include_inactive else [k for k in keys if k.active]


def keys_of(ctx: Context, user_id: int) -> list[ApiKey]:
    """The user's key aggregates (for revoking them together with the user)."""
    return [ctx.ledger.repository.get(api_key_uuid(k.id)) for k in list_api_keys(ctx, user_id)]


def forget_keys_of(ctx: Context, user_id: int) -> None:
    with ctx.api_keys.view.read() as tx:
        hashes = [r["secret_hash"] for r in tx.all("SELECT secret_hash FROM api_keys WHERE user_id = ?", (user_id,))]
    ctx.cache.drop(hashes)


def hashes_affected_by(ctx: Context, events: list[Any]) -> list[str]:
    """Key hashes whose cached principal is stale after these events (revoked, user changed)."""
    hashes: list[str] = []
    with ctx.api_keys.view.read() as keys, ctx.accounts.view.read() as users:
        for e in events:
            if isinstance(e, ApiKey.Event):
                hashes += [r["secret_hash"] for r in keys.all(
                    "SELECT secret_hash FROM api_keys WHERE aggregate_id = ?", (str(e.originator_id),))]
            elif isinstance(e, User.Event):
                user_id = users.scalar("SELECT id FROM users WHERE aggregate_id = ?", (str(e.originator_id),))
                hashes += [r["secret_hash"] for r in keys.all(
                    "SELECT secret_hash FROM api_keys WHERE user_id = ?", (user_id,))]
    return hashes


# authentication -----------------------------------------------------------------------------
def lookup_principal(ctx: Context, secret_hash: str) -> CachedPrincipal | None:
    """Resolve a key hash on a cache miss: the key must be live and its user active."""
    with ctx.api_keys.view.read() as tx:
        key = tx.one(
            "SELECT id, user_id, scopes, expires_at, rate_limit, revoked_at FROM api_keys WHERE secret_hash = ?",
            (secret_hash,),
        )
    if key is None or key["revoked_at"] is not None:
        return None
    user = get_user(ctx, key["user_id"])
    if user is None or user.deleted or user.suspended:
        return None
    expires_at = None
    if key["expires_at"]:
        expires_at = datetime.strptime(key["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    principal = Principal(
        user_id=user.id, username=user.username, role=Role(user.role), api_key_id=key["id"],
        scopes=tuple(key["scopes"].split()) or ALL_SCOPES, rate_limit=key["rate_limit"],
    )
    return CachedPrincipal(principal, expires_at)


def record_expiry(ctx: Context, key_id: int, correlation_id: str) -> None:
    """Record `ApiKey.Expired` the first time an expired key is refused (expiry is an event).
    A read-only server (a replay) records nothing: the key is refused all the same."""
    if ctx.read_only is not None:
        return
    key: ApiKey | None = ctx.ledger.find(api_key_uuid(key_id))
    if key is None:
        return
    actor = Actor(user_id=key.user_id, api_key_id=key.key_id, correlation_id=correlation_id)
    if key.mark_expired(actor, datetime.now(timezone.utc)):
        try:
            ctx.save(key, project=[ctx.api_keys])
        except IntegrityError:
            log.info("key %s: expiry already recorded by a concurrent request", key_id)
    ctx.cache.drop([key.secret_hash])


def is_expired(entry: CachedPrincipal) -> bool:
    return entry.expires_at is not None and time.time() >= entry.expires_at
