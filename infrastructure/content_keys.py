"""Per-user data keys for crypto-shredding (domain/sealed.py), kept outside the event log.

Each user (the owner: their User aggregate's UUID) gets a random 256-bit AES-GCM data key on
their first sealed content. The key is stored wrapped (AES-GCM under the master key, bound
to its key id and owner) in `DATA_DIR/content_keys.db` (embedded) or in the
`ledger_content_keys` table (PostgreSQL); see infrastructure/content_key_store.py. Erasing a user deletes their keys and leaves a
tombstone, so old events that still hold plaintext (written before sealing existed) read as
erased too. The freed bytes are wiped: SQLite runs with `secure_delete` and the journal is
a rollback journal that is deleted after each commit; PostgreSQL gets a VACUUM of the table.

The master key: `CONTENT_MASTER_KEY` (64 hex characters), or `CONTENT_MASTER_KEY_FILE`, or
`DATA_DIR/master.key` (0600), made on first use; with DATABASE_URL and neither set, one made
once in PostgreSQL (every machine must use the same master key).

Data keys are cached per process once unwrapped (sealing and opening then cost microseconds).
A process drops its cached keys of a user when it reads that user's `User.Erased` event
(the mapper calls `forget`; the server's follower reads it within its poll interval), and
every cached key is read again after CACHE_SECONDS anyway. The erasing process deletes the
keys *before* it records the event, so no process can load them again once the event exists."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Cipher
from eventsourcing.utils import Environment

from domain.sealed import Sealed
from infrastructure.content_key_store import Backend, MemoryBackend, PostgresBackend, SqliteBackend
from infrastructure.files import atomic_write

log = logging.getLogger("ledgerllm")

KEYS_FILE, MASTER_FILE = "content_keys.db", "master.key"
ENV_STORE, ENV_MASTER = "CONTENT_KEYS_STORE", "CONTENT_MASTER_KEY"
_encode, _decode = msgspec.json.encode, msgspec.json.decode


class SealedContentDamaged(ValueError):
    """A sealed field does not authenticate under its key: altered behind the app's back."""


class MasterKeyError(ValueError):
    pass


def master_key_hex(configured: str | None, key_file: Path | None, data_dir: Path) -> str:
    """The master key as hex: the setting, else the file (made 0600 at DATA_DIR/master.key
    on first use when no file is configured)."""
    if configured:
        return _check_hex(configured, "CONTENT_MASTER_KEY")
    path = key_file or data_dir / MASTER_FILE
    try:
        return _check_hex(path.read_text(), str(path))
    except FileNotFoundError:
        if key_file is not None:
            raise MasterKeyError(f"CONTENT_MASTER_KEY_FILE {path} does not exist") from None
    text = os.urandom(32).hex()
    atomic_write(path, text.encode() + b"\n")  # 0600
    return text


_pg_masters: dict[str, str] = {}


def postgres_master_key_hex(url: str) -> str:
    """With DATABASE_URL and no master key configured: one master key for every machine, made
    once and kept in `ledger_content_master` (so a machine may still lose its DATA_DIR). The
    data keys are then protected only as well as the database is: set CONTENT_MASTER_KEY."""
    if url not in _pg_masters:
        import psycopg

        with psycopg.connect(url, connect_timeout=10) as c:
            try:
                c.execute("CREATE TABLE IF NOT EXISTS ledger_content_master"
                          " (id INTEGER PRIMARY KEY CHECK (id = 1), key TEXT NOT NULL)")
                c.commit()
            except psycopg.Error:  # made by another process at the same moment
                c.rollback()
            c.execute("INSERT INTO ledger_content_master VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
                      (os.urandom(32).hex(),))
            found = c.execute("SELECT key FROM ledger_content_master WHERE id = 1").fetchone()[0]
        log.warning("CONTENT_MASTER_KEY is not set: the master key of the data keys is kept in PostgreSQL "
                    "beside them; set CONTENT_MASTER_KEY (the same on every machine) to keep it apart")
        _pg_masters[url] = _check_hex(found, "ledger_content_master")
    return _pg_masters[url]


def _check_hex(text: str, where: str) -> str:
    text = text.strip()
    try:
        if len(bytes.fromhex(text)) == 32:
            return text.lower()
    except ValueError:
        pass
    raise MasterKeyError(f"the master key in {where} must be 64 hexadecimal characters (256 bits)")


# the key ring ------------------------------------------------------------------------------
class KeyRing:
    """The application's KeyStore port (application/ports.py) over one backend."""

    def __init__(self, backend: Backend, master: bytes) -> None:
        self._backend = backend
        self._master = AESGCM(master)
        self._lock = threading.Lock()
        self._by_id: dict[str, AESGCM | None] = {}  # None: known to be destroyed
        self._active: dict[UUID, tuple[str, AESGCM]] = {}
        self._cached_of: dict[UUID, set[str]] = {}
        self._erased: set[UUID] | None = None
        self._fresh_until = time.monotonic() + CACHE_SECONDS

    def refresh(self) -> None:
        """Forget every cached key and tombstone; they are read from the store again as needed."""
        with self._lock:
            self._active.clear()
            self._cached_of.clear()
            self._by_id = {k: v for k, v in self._by_id.items() if v is None}
            self._erased = None
            self._fresh_until = time.monotonic() + CACHE_SECONDS

    def seal(self, owner: UUID, field: str, value: object) -> Sealed:
        return self.seal_json(owner, field, _encode(value))

    def seal_json(self, owner: UUID, field: str, plain: bytes) -> Sealed:
        """`seal` of a value already encoded as JSON (the mapper has encoded it to check it)."""
        if time.monotonic() > self._fresh_until:
            self.refresh()
        key_id, aes = self._active.get(owner) or self._new_or_active(owner)
        nonce = os.urandom(12)
        return Sealed(key_id, nonce, aes.encrypt(nonce, plain, _aad(owner, field, key_id)))

    def open(self, owner: UUID, field: str, sealed: Sealed) -> tuple[bool, object]:
        found, plain = self.open_json(owner, field, sealed)
        return (True, _decode(plain)) if found else (False, None)

    def open_json(self, owner: UUID, field: str, sealed: Sealed) -> tuple[bool, bytes]:
        """(True, the field's JSON), or (False, b"") once its key is gone."""
        if time.monotonic() > self._fresh_until:
            self.refresh()
        aes = self._by_id.get(sealed.key_id, _UNKNOWN)  # one read: refresh() may swap the dict meanwhile
        if aes is _UNKNOWN:
            aes = self._load(sealed.key_id, owner)
        if aes is None:
            return False, b""
        try:
            return True, aes.decrypt(sealed.nonce, sealed.ciphertext, _aad(owner, field, sealed.key_id))
        except InvalidTag:
            raise SealedContentDamaged(f"sealed field {field} does not authenticate under key {sealed.key_id}") from None

    def is_erased(self, owner: UUID) -> bool:
        if self._erased is None:
            self._erased = {UUID(o) for o in self._backend.erased()}
        return owner in self._erased

    def forget(self, owner: UUID) -> None:
        with self._lock:
            self._active.pop(owner, None)
            for key_id in self._cached_of.pop(owner, ()):
                self._by_id.pop(key_id, None)
            if self._erased is not None:
                self._erased.add(owner)

    def destroy(self, owner: UUID) -> int:
        with self._lock:
            n = self._backend.destroy(str(owner))
        self.forget(owner)
        return n

    def copy_to(self, other: KeyRing) -> int:
        """Put every (still wrapped) key and tombstone of this ring into `other`, which must use
        the same master key (a replay's store takes the keys its events were sealed with)."""
        rows = self._backend.rows()
        other._backend.put(rows, self._backend.erased())
        other.refresh()
        return len(rows)

    def _new_or_active(self, owner: UUID) -> tuple[str, AESGCM]:
        with self._lock:
            found = self._backend.active(str(owner))
            if found is None:
                key_id, dek = uuid.uuid4().hex, AESGCM.generate_key(256)
                nonce = os.urandom(12)
                self._backend.add(key_id, str(owner), nonce + self._master.encrypt(nonce, dek, _wrap_aad(owner, key_id)))
            else:
                key_id, dek = found[0], self._unwrap(owner, *found)
            aes = self._cache(owner, key_id, dek)
            self._active[owner] = (key_id, aes)
            return key_id, aes

    def _load(self, key_id: str, owner: UUID) -> AESGCM | None:
        found = self._backend.get(key_id)
        if found is None or found[0] != str(owner):
            self._by_id[key_id] = None  # destroyed keys never come back
            if not self.is_erased(owner):
                log.warning("data key %s of %s is missing: its content reads as erased", key_id, owner)
            return None
        with self._lock:
            return self._cache(owner, key_id, self._unwrap(owner, key_id, found[1]))

    def _cache(self, owner: UUID, key_id: str, dek: bytes) -> AESGCM:
        aes = self._by_id[key_id] = AESGCM(dek)
        self._cached_of.setdefault(owner, set()).add(key_id)
        return aes

    def _unwrap(self, owner: UUID, key_id: str, wrapped: bytes) -> bytes:
        try:
            return self._master.decrypt(wrapped[:12], wrapped[12:], _wrap_aad(owner, key_id))
        except InvalidTag:
            raise MasterKeyError(f"data key {key_id} does not open with this master key (is CONTENT_MASTER_KEY "
                                 "the one the keys were made with?)") from None


def _aad(owner: UUID, field: str, key_id: str) -> bytes:
    return b"ledgerllm:sealed:" + owner.bytes + key_id.encode() + b":" + field.encode()


def _wrap_aad(owner: UUID, key_id: str) -> bytes:
    return b"ledgerllm:data-key:" + owner.bytes + key_id.encode()


_UNKNOWN: Any = object()
# Cached keys are trusted this long, then read again: a process that missed an erasure's event
# (it does not follow the log) stops using the destroyed key within this time.
CACHE_SECONDS = 30.0
_rings: dict[tuple[str, str], KeyRing] = {}
_rings_lock = threading.Lock()


def key_ring(store: str, master_hex: str) -> KeyRing:
    """One ring per (store, master key) per process, so every Ledger shares its cache.
    `store`: `sqlite:PATH`, `postgres:URL` or `memory:NAME`."""
    with _rings_lock:
        ring = _rings.get((store, master_hex))
        if ring is None:
            kind, _, where = store.partition(":")
            backend: Backend
            if kind == "sqlite":
                backend = SqliteBackend(Path(where))
            elif kind == "postgres":
                backend = PostgresBackend(where)
            else:
                backend = MemoryBackend()
            ring = _rings[(store, master_hex)] = KeyRing(backend, bytes.fromhex(master_hex))
        else:
            ring.refresh()  # a new store connection sees the keys as they are now
        return ring


class ShreddingCipher(Cipher):
    """Handed to the mapper by the library (CIPHER_TOPIC) with the store's environment; the
    mapper seals and opens single fields with `ring` instead of encrypting whole events."""

    def __init__(self, environment: Environment) -> None:
        self.ring = key_ring(environment.get(ENV_STORE) or "memory:", environment.get(ENV_MASTER) or os.urandom(32).hex())

    def encrypt(self, plaintext: bytes) -> bytes:
        raise NotImplementedError("content is sealed per field (infrastructure/mapper.py)")

    def decrypt(self, ciphertext: bytes) -> bytes:
        raise NotImplementedError("content is sealed per field (infrastructure/mapper.py)")
