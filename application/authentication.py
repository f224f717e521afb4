"""Authentication: who a presented API key stands for (a cache miss resolved from the read
models, or from the aggregates while those are stalled), the expiry recorded when an expired
key is presented, and which cached principals an event makes stale. Every authenticated
request runs this; the API-key use cases are `application/apikeys.py`."""

from __future__ import annotations

from collections.abc import Iterable

from eventsourcing.persistence import IntegrityError

from application.ledger import Context, PublicCommand, log
from application.ports import CachedPrincipal
from domain.apikeys import ApiKey, api_key_uuid
from domain.principal import ALL_SCOPES, Actor, Principal, Role
from domain.timefmt import parse_iso
from domain.users import User, user_uuid


def hashes_affected_by(ctx: Context, events: Iterable[object]) -> list[str]:
    """Key hashes whose cached principal is stale after these events (revoked, user changed)."""
    hashes: list[str] = []
    for e in events:
        if isinstance(e, ApiKey.Event):
            hashes += ctx.api_keys.hashes_of_key(str(e.originator_id))
        elif isinstance(e, User.Event):
            user_id = ctx.accounts.user_id_of(str(e.originator_id))
            if user_id is not None:
                hashes += ctx.api_keys.hashes_of_user(user_id)
    return hashes


def auth_reads_store(ctx: Context) -> bool:
    """While `accounts` or `api_keys` is stalled, their rows may miss a revocation or a
    suspension stored since: principals then come from the aggregates in the event store
    (and skip the cache), so nothing an applied event would refuse gets through."""
    return ctx.accounts.stalled() or ctx.api_keys.stalled()


def principal_from_store(ctx: Context, secret_hash: str) -> CachedPrincipal | None:
    """A key hash resolved from the ApiKey and User aggregates. The (stale-safe) hash lookup
    names the key; a key the stalled listing lacks is refused."""
    key_id = ctx.api_keys.key_id_by_hash(secret_hash)
    key: ApiKey | None = ctx.ledger.find(api_key_uuid(key_id)) if key_id is not None else None
    if key is None or key.secret_hash != secret_hash or key.revoked or key.expired:
        return None
    user: User | None = ctx.ledger.find(user_uuid(key.user_id))
    if user is None or user.deleted or user.suspended:
        return None
    principal = Principal(
        user_id=user.user_id, username=user.username, role=user.role, api_key_id=key.key_id,
        scopes=tuple(key.scopes) or ALL_SCOPES, rate_limit=key.rate_limit,
    )
    return CachedPrincipal(principal, key.expires_at.timestamp() if key.expires_at else None)


def lookup_principal(ctx: Context, secret_hash: str) -> CachedPrincipal | None:
    """Resolve a key hash on a cache miss: the key must be live and its user active."""
    if auth_reads_store(ctx):
        return principal_from_store(ctx, secret_hash)
    key = ctx.api_keys.by_hash(secret_hash)
    if key is None or key.revoked:
        return None
    user = ctx.accounts.user(key.user_id)
    if user is None or user.deleted or user.suspended:
        return None
    expires_at = parse_iso(key.expires_at).timestamp() if key.expires_at else None
    principal = Principal(
        user_id=user.id, username=user.username, role=Role(user.role), api_key_id=key.id,
        scopes=key.scopes or ALL_SCOPES, rate_limit=key.rate_limit,
    )
    return CachedPrincipal(principal, expires_at)


class RecordExpiry(PublicCommand, frozen=True, kw_only=True):
    """An expired key was presented: its expiry is recorded as acted by the key itself."""

    key_id: int


def record_expiry(ctx: Context, cmd: RecordExpiry) -> None:
    """Record `ApiKey.Expired` the first time an expired key is refused (expiry is an event).
    A read-only server (a replay) records nothing: the key is refused all the same."""
    if ctx.read_only is not None or ctx.api_keys.stalled():  # refused all the same; recorded once repaired
        return
    key_id = cmd.key_id
    key = ctx.ledger.find(api_key_uuid(key_id), ApiKey)
    if key is None:
        return
    actor = Actor(user_id=key.user_id, api_key_id=key.key_id, correlation_id=cmd.correlation_id)
    if key.mark_expired(actor, ctx.clock.now()):
        try:
            ctx.save(key, project=[ctx.api_keys])
        except IntegrityError:
            log.info("key %s: expiry already recorded by a concurrent request", key_id)
    ctx.cache.drop([key.secret_hash])


def is_expired(ctx: Context, entry: CachedPrincipal) -> bool:
    return entry.expires_at is not None and ctx.clock.now().timestamp() >= entry.expires_at
