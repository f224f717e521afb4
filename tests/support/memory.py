"""Use cases on the library's in-memory event store and in-memory SQLite views: the real
handlers and projections with nothing on disk but blobs, and a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api.wiring import Runtime, open_runtime
from application.apikeys import CreateApiKey, create_api_key
from application.authentication import lookup_principal
from application.users import CreateUser, EnableMultiUser, create_user, enable_multi_user, principal_for
from domain.hashing import hash_secret
from domain.principal import Principal
from infrastructure.settings import load_settings
from tests.support.clock import FakeClock


@contextmanager
def memory_runtime(tmp_path: Path, clock: FakeClock | None = None, **settings: Any) -> Iterator[Runtime]:
    runtime = open_runtime(load_settings({}, data_dir=tmp_path / "data", in_memory=True, embed_model=False,
                                         **settings), clock=clock or FakeClock())
    try:
        yield runtime
    finally:
        runtime.close()


def owner(runtime: Runtime) -> Principal:
    ctx = runtime.ctx
    row = ctx.accounts.user(ctx.accounts.owner_id())
    assert row is not None
    return principal_for(ctx, row)


def new_events(runtime: Runtime, after: int) -> list[Any]:
    """The events stored after position `after`, decoded, in order."""
    ledger = runtime.ctx.ledger
    return [ledger.mapper.to_domain_event(n) for n in ledger.recorder.select_notifications(after + 1, 10_000)]


def head(runtime: Runtime) -> int:
    return runtime.ctx.ledger.recorder.max_notification_id() or 0


def kinds(events: list[Any]) -> list[str]:
    """The events' types as `Aggregate.Event` names, e.g. `Workspace.Created`."""
    return [type(e).__qualname__ for e in events]


def stamps(events: list[Any]) -> set[tuple[int, int | None, str]]:
    """The (actor_user_id, actor_api_key_id, correlation_id) the events carry, as a set."""
    return {(e.actor_user_id, e.actor_api_key_id, e.correlation_id) for e in events}


def multi_user(runtime: Runtime) -> None:
    """Turn on multi-user mode (where a default user sees only the workspaces it belongs to)."""
    enable_multi_user(runtime.ctx, EnableMultiUser(principal=owner(runtime), correlation_id="setup-multi",
                                                   username="admin", password="owner-password-1"))


def user(runtime: Runtime, username: str = "dana", role: str = "default") -> Principal:
    """A new user with `role`, registered by the owner, acting without a key (a session)."""
    row = create_user(runtime.ctx, CreateUser(principal=owner(runtime), correlation_id=f"setup-{username}",
                                              username=username, password="user-password-1", role=role))
    return principal_for(runtime.ctx, row)


def with_key(runtime: Runtime, principal: Principal, scopes: tuple[str, ...] | None = None) -> Principal:
    """`principal` acting through a new API key (with `scopes`; None: all), as authentication
    resolves it."""
    new = create_api_key(runtime.ctx, CreateApiKey(principal=owner(runtime), correlation_id="setup-key",
                                                   user_id=principal.user_id, scopes=scopes))
    entry = lookup_principal(runtime.ctx, hash_secret(new.secret))
    assert entry is not None
    return entry.principal


# --- helpers for the user, session, invite, embed and chat handler tests ---------------------
PASSWORD = "correct horse battery"


def add_user(runtime: Runtime, username: str, role: str = "default", by: Principal | None = None) -> Principal:
    """A user made by `by` (the owner by default), as the principal it signs in as."""
    from application.users import CreateUser, create_user

    row = create_user(runtime.ctx, CreateUser(principal=by or owner(runtime), correlation_id=f"given-{username}",
                                              username=username, password=PASSWORD, role=role))
    return principal_for(runtime.ctx, row)


def own_key(runtime: Runtime, principal: Principal) -> Principal:
    """The same user acting through a new API key of theirs (so events carry a key id)."""
    from application.apikeys import CreateApiKey, create_api_key
    from application.authentication import lookup_principal
    from domain.hashing import hash_secret

    new = create_api_key(runtime.ctx, CreateApiKey(principal=principal, correlation_id="given-key"))
    entry = lookup_principal(runtime.ctx, hash_secret(new.secret))
    assert entry is not None
    return entry.principal


def multi_user_as_root(runtime: Runtime) -> Principal:
    """Turn on multi-user mode; the owner (now named `root`) as principal."""
    from application.users import EnableMultiUser, enable_multi_user

    row = enable_multi_user(runtime.ctx, EnableMultiUser(principal=owner(runtime), correlation_id="given-multi",
                                                         username="root", password=PASSWORD))
    return principal_for(runtime.ctx, row)


def add_workspace(runtime: Runtime, name: str, **settings: Any) -> Any:
    """A workspace made by the owner (its read-model row)."""
    from application.workspaces import CreateWorkspace, create_workspace

    return create_workspace(runtime.ctx, CreateWorkspace(principal=owner(runtime), correlation_id=f"given-{name}",
                                                         name=name, settings=settings))
