"""The data-key store on an SQLite file and on PostgreSQL: content sealed by one process opens
in another, survives a reopen, and never opens again once its owner's keys are destroyed; the
wrapped keys need the master key they were made with."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from infrastructure.content_keys import (
    ENV_MASTER, ENV_STORE, KeyRing, MasterKeyError, key_ring,
)
from infrastructure.content_key_store import PostgresBackend, SqliteBackend
from infrastructure.eventstore import content_keys_env


def _rings(backend) -> tuple[KeyRing, KeyRing, str, str]:
    """Two rings on one store, as two processes have them (each with its own cache)."""
    env = content_keys_env(backend.settings())
    store, master = env[ENV_STORE], env[ENV_MASTER]
    kind, _, where = store.partition(":")
    second_process = SqliteBackend(Path(where)) if kind == "sqlite" else PostgresBackend(where)
    return key_ring(store, master), KeyRing(second_process, bytes.fromhex(master)), store, master


def test_sealed_content_opens_elsewhere_until_its_owner_is_erased(backend):
    backend.data_dir.mkdir(parents=True, exist_ok=True)
    first, other, store, master = _rings(backend)
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
        KeyRing(other._backend, bytes(32)).open(eve, "prompt", kept)  # another master key
