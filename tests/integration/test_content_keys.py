"""The data-key store on an SQLite file and on PostgreSQL: content sealed by one process opens
in another, survives a reopen, and never opens again once its owner's keys are destroyed; the
wrapped keys need the master key they were made with."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest

from infrastructure.content_keys import (
    ENV_MASTER, ENV_STORE, KeyRing, MasterKeyError, key_ring,
)
from infrastructure.content_key_store import PostgresBackend, SqliteBackend
from infrastructure.eventstore import content_keys_env


def _rings(backend) -> tuple[KeyRing, KeyRing, SqliteBackend | PostgresBackend]:
    """Two rings on one store, as two processes have them (each with its own cache), and the
    second one's connection to that store."""
    env = content_keys_env(backend.settings())
    store, master = env[ENV_STORE], env[ENV_MASTER]
    kind, _, where = store.partition(":")
    second_process = SqliteBackend(Path(where)) if kind == "sqlite" else PostgresBackend(where)
    return key_ring(store, master), KeyRing(second_process, bytes.fromhex(master)), second_process


def test_sealed_content_opens_elsewhere_until_its_owner_is_erased(backend):
    backend.data_dir.mkdir(parents=True, exist_ok=True)
    first, other, second_store = _rings(backend)
    dana, eve = uuid.uuid4(), uuid.uuid4()
    sealed = first.seal(dana, "prompt", "a private question")
    assert sealed.ciphertext and b"private" not in sealed.ciphertext
    assert other.open(dana, "prompt", sealed) == (True, "a private question")
    assert first.seal(dana, "response", ["x"]).key_id == sealed.key_id  # one key per user
    with pytest.raises(ValueError):  # bound to its field and owner
        other.open(eve, "prompt", sealed)
    kept = first.seal(eve, "prompt", "eve stays")
    assert other.destroy(dana) == 1 and other.is_erased(dana) and not other.is_erased(eve)
    first.forget(dana)  # as the mapper does when it reads User.Erased
    assert first.open(dana, "prompt", sealed) == (False, None)
    assert first.open(eve, "prompt", kept) == (True, "eve stays")
    fresh = first.seal(dana, "prompt", "after")  # new content: a new key
    assert fresh.key_id != sealed.key_id and other.open(dana, "prompt", fresh) == (True, "after")
    with pytest.raises(MasterKeyError):
        KeyRing(second_store, bytes(32)).open(eve, "prompt", kept)  # another master key


def test_a_process_that_reads_the_erasure_drops_its_cached_key(backend):
    """Two processes on one store: the one that did not erase the user had their key cached; once
    it reads their User.Erased event (as its follower does), it no longer opens their content."""
    from application.erasure import EraseUser, erase_user
    from application.users import CreateUser, EnableMultiUser, UpdateUser, create_user, enable_multi_user, \
        principal_for, update_user
    from domain.sealed import ERASED
    from domain.users import User
    from tests.integration.test_projections import owner, runtime_of

    with runtime_of(backend) as first, runtime_of(backend) as second:
        boss = enable_multi_user(first.ctx, EnableMultiUser(principal=owner(first.ctx), correlation_id="m",
                                                            username="boss", password="boss-password"))
        admin = principal_for(first.ctx, boss)
        dana = create_user(first.ctx, CreateUser(principal=admin, correlation_id="c", username="dana",
                                                 password="dana-password"))
        update_user(first.ctx, UpdateUser(principal=admin, correlation_id="b", user_id=dana.id, bio="dana's secret"))
        recorder, mapper = first.ctx.ledger.recorder, copy.copy(first.ctx.ledger.mapper)
        mapper.keys = _rings(backend)[1]  # its own ring and cache, as another process has them

        def bios() -> list[str]:
            return [e.bio for e in map(mapper.to_domain_event, recorder.select_notifications(1, 10_000))
                    if isinstance(e, User.ProfileUpdated) and e.bio is not None]

        assert bios() == ["dana's secret"]  # the first process has dana's key cached now
        seen = recorder.max_notification_id()
        second_admin = principal_for(second.ctx, second.ctx.accounts.user(boss.id))
        erase_user(second.ctx, EraseUser(principal=second_admin, correlation_id="e", user_id=dana.id, reason="asked"))
        erasure = recorder.select_notifications(seen + 1, 10)
        assert [type(mapper.to_domain_event(n)) for n in erasure] == [User.Erased]
        assert bios() == [ERASED]  # its cached key went with the event, not 30 s later
