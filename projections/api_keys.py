"""Read model of API keys: the listing (no secret, only a display prefix) and the hash lookup."""

from __future__ import annotations

from domain.apikeys import ApiKey
from projections.base import SqlProjection, Tx, handles, iso


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
