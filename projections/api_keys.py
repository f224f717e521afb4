"""Read model of API keys: the listing (no secret, only a display prefix) and the hash lookup."""

from __future__ import annotations

from typing import Any

from application.rows import ApiKeyRow, KeyLookup
from domain.apikeys import ApiKey
from projections.base import SqlProjection, Tx, handles, iso
from projections.readmodel import ReadModelView


class ApiKeysProjection(SqlProjection):
    name = "api_keys"
    tables = ["api_keys"]
    schema = [
        """CREATE TABLE IF NOT EXISTS api_keys (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, secret_hash TEXT NOT NULL UNIQUE,
            display_prefix TEXT NOT NULL, name TEXT, user_id BIGINT NOT NULL, scopes TEXT NOT NULL,
            expires_at TEXT, rate_limit INTEGER, created_by BIGINT NOT NULL,
            created_by_key BIGINT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            revoked_at TEXT, revoked_by BIGINT, expired INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id)",
    ]

    @handles(ApiKey.Issued)
    def _issued(self, tx: Tx, e: ApiKey.Issued) -> None:
        tx.execute(
            "INSERT INTO api_keys (id, aggregate_id, secret_hash, display_prefix, name, user_id, scopes,"
            " expires_at, rate_limit, created_by, created_by_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.key_id, str(e.originator_id), e.secret_hash, e.display_prefix, e.name, e.user_id,
                " ".join(e.scopes), iso(e.expires_at), e.rate_limit, e.actor_user_id,
                e.actor_api_key_id, iso(e.timestamp), iso(e.timestamp),
            ),
        )

    @handles(ApiKey.Revoked)
    def _revoked(self, tx: Tx, e: ApiKey.Revoked) -> None:
        tx.execute(
            "UPDATE api_keys SET revoked_at = ?, revoked_by = ?, updated_at = ? WHERE aggregate_id = ?",
            (iso(e.timestamp), e.actor_user_id, iso(e.timestamp), str(e.originator_id)),
        )

    @handles(ApiKey.Expired)
    def _expired(self, tx: Tx, e: ApiKey.Expired) -> None:
        tx.execute("UPDATE api_keys SET expired = 1, updated_at = ? WHERE aggregate_id = ?",
                   (iso(e.timestamp), str(e.originator_id)))


class ApiKeyListing(ReadModelView):
    """Queries on the API key listing and the key-hash lookup."""

    _ROW = ("SELECT id, name, display_prefix, user_id, scopes, expires_at, rate_limit, created_by, created_at,"
            " updated_at, revoked_at, expired FROM api_keys")

    def key(self, key_id: int) -> ApiKeyRow | None:
        with self._read() as tx:
            row = tx.one(self._ROW + " WHERE id = ?", (key_id,))
        return None if row is None else _key(row)

    def keys(self, user_id: int | None = None) -> list[ApiKeyRow]:
        with self._read() as tx:
            if user_id is None:
                rows = tx.all(self._ROW + " ORDER BY id")
            else:
                rows = tx.all(self._ROW + " WHERE user_id = ? ORDER BY id", (user_id,))
        return [_key(r) for r in rows]

    def by_hash(self, secret_hash: str) -> KeyLookup | None:
        with self._read() as tx:
            r = tx.one("SELECT id, user_id, scopes, expires_at, rate_limit, revoked_at FROM api_keys"
                       " WHERE secret_hash = ?", (secret_hash,))
        if r is None:
            return None
        return KeyLookup(r["id"], r["user_id"], tuple(r["scopes"].split()), r["expires_at"], r["rate_limit"],
                         r["revoked_at"] is not None)

    def stalled(self) -> bool:
        return self.runner.stall is not None

    def key_id_by_hash(self, secret_hash: str) -> int | None:
        """Stale is safe: a hash names one key forever, and a key this stalled view lacks is refused."""
        with self._read(stale_ok=True) as tx:
            found = tx.scalar("SELECT id FROM api_keys WHERE secret_hash = ?", (secret_hash,))
        return None if found is None else int(found)

    # Stale answers are safe for the two below: they name keys to drop from caches, and a key
    # missing from a stalled listing was never authenticated through it.
    def hashes_of_user(self, user_id: int) -> list[str]:
        with self._read(stale_ok=True) as tx:
            return [r["secret_hash"] for r in tx.all("SELECT secret_hash FROM api_keys WHERE user_id = ?", (user_id,))]

    def hashes_of_key(self, aggregate_id: str) -> list[str]:
        with self._read(stale_ok=True) as tx:
            return [r["secret_hash"] for r in tx.all("SELECT secret_hash FROM api_keys WHERE aggregate_id = ?",
                                                     (aggregate_id,))]


def _key(r: dict[str, Any]) -> ApiKeyRow:
    return ApiKeyRow(
        id=r["id"], name=r["name"], display_prefix=r["display_prefix"], user_id=r["user_id"],
        scopes=tuple(r["scopes"].split()), expires_at=r["expires_at"], rate_limit=r["rate_limit"],
        created_by=r["created_by"], created_at=r["created_at"], updated_at=r["updated_at"],
        revoked_at=r["revoked_at"], expired=bool(r["expired"]))
