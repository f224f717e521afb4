"""Wiring, in one place: which adapter fills which port, for the server and the CLI alike."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.utils import get_topic

from application.apikeys import hashes_affected_by
from application.ledger import Context, Ledger
from application.ports import RateLimiter
from application.users import install
from domain.apikeys import ApiKey
from domain.users import User
from infrastructure.eventstore import ledger_env, open_view
from infrastructure.memory_cache import MemoryPrincipalCache, MemoryRateLimiter
from infrastructure.passwords import Argon2Hasher
from infrastructure.settings import Settings
from infrastructure.tokens import JwtTokens, jwt_secret
from projections.accounts import AccountsProjection
from projections.api_keys import ApiKeysProjection
from projections.runner import Follower, ProjectionRunner

log = logging.getLogger("ledgerllm")

# Events after which a cached principal may be stale (changed elsewhere, e.g. by the CLI).
STALE_PRINCIPAL_TOPICS = frozenset(
    get_topic(c)
    for c in (ApiKey.Revoked, ApiKey.Expired, User.Suspended, User.Deleted, User.RoleChanged, User.Renamed)
)


@dataclass
class Runtime:
    settings: Settings
    ctx: Context
    limiter: RateLimiter
    follower: Follower | None = None
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        if self.follower:
            self.follower.stop()
        for view in (self.ctx.accounts.view, self.ctx.api_keys.view):
            view.datastore.close()
        self.ctx.ledger.close()


def open_runtime(settings: Settings, *, follow: bool = False) -> Runtime:
    """Open the store, the views and the adapters; install the owner on first start.

    `follow=True` (the server) starts a thread that keeps the views caught up with events
    written by other processes and drops cached principals those events made stale."""
    ledger = Ledger(env=ledger_env(settings))
    accounts = ProjectionRunner(ledger, AccountsProjection(open_view(settings, "accounts", AccountsProjection.views())))
    api_keys = ProjectionRunner(ledger, ApiKeysProjection(open_view(settings, "api_keys", ApiKeysProjection.views())))
    if settings.redis_url:
        from infrastructure.redis_cache import RedisPrincipalCache, RedisRateLimiter

        cache: Any = RedisPrincipalCache(settings.redis_url)
        limiter: Any = RedisRateLimiter(settings.redis_url)
    else:
        cache, limiter = MemoryPrincipalCache(), MemoryRateLimiter()
    ctx = Context(
        ledger=ledger, accounts=accounts, api_keys=api_keys, hasher=Argon2Hasher(), cache=cache,
        tokens=JwtTokens(jwt_secret(settings), settings.jwt_expiry_seconds),
        owner_username=settings.owner_username, simple_sso_enabled=settings.simple_sso_enabled,
    )
    install(ctx, settings.auth_token)
    for runner in ctx.runners:
        runner.catch_up()
    runtime = Runtime(settings, ctx, limiter)
    if settings.redis_url:
        runtime.closers += [cache, limiter]
    if follow:
        runtime.follower = Follower(
            ledger, ctx.runners, settings.projection_poll_seconds, STALE_PRINCIPAL_TOPICS,
            lambda events: ctx.cache.drop(hashes_affected_by(ctx, events)),
        )
        ctx.on_saved.append(runtime.follower.wake)
        runtime.follower.start()
    return runtime
