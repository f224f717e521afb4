"""Webhook delivery checkpoints, beside the store: `webhook_deliveries` in its own SQLite file
under DATA_DIR (embedded) or in the PostgreSQL database (DATABASE_URL).

One row per webhook: the last position it took (or passed over), its failures in a row, when
it may be tried next, whether it is parked, and a lease. A process delivers a webhook only
while it holds the lease (a conditional UPDATE: on PostgreSQL the row lock makes a second
process re-check the condition and lose; on SQLite the write lock serialises them), and every
checkpoint write checks the lease too, so several server processes deliver each event once
between them. A process that dies leaves its lease to expire; the next one resumes at the
checkpoint, so an event is sent at least once (receivers drop repeats by `X-Ledgerllm-Delivery`)."""

from __future__ import annotations

from typing import Any

from application.rows import DeliveryState
from infrastructure.eventstore import open_view
from infrastructure.settings import Settings
from projections.base import view_classes

NAME = "webhook_deliveries"
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
        webhook_id BIGINT PRIMARY KEY, position BIGINT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
        parked INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_error TEXT, delivered BIGINT NOT NULL DEFAULT 0, lease_owner TEXT,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0)""",
]
ERROR_MAX = 300
_STATE = "SELECT webhook_id, position, failures, parked, next_attempt_at, last_error, delivered FROM webhook_deliveries"


def _state(r: dict[str, Any]) -> DeliveryState:
    return DeliveryState(webhook_id=r["webhook_id"], position=r["position"], failures=r["failures"],
                         parked=bool(r["parked"]), next_attempt_at=float(r["next_attempt_at"]),
                         last_error=r["last_error"], delivered=r["delivered"])


class DeliveryStore:
    def __init__(self, settings: Settings) -> None:
        # durable: delivery positions and failures are in no event, so a lost commit would resend
        self.view: Any = open_view(settings, NAME, view_classes(NAME, SCHEMA, [NAME]), durable=True)

    def close(self) -> None:
        self.view.datastore.close()

    def states(self) -> dict[int, DeliveryState]:
        with self.view.read() as tx:
            return {r["webhook_id"]: _state(r) for r in tx.all(_STATE)}

    def lease(self, webhook_id: int, start: int, owner: str, now: float, seconds: float) -> DeliveryState | None:
        """Take or renew the webhook's lease; its state if this process holds it now, else None."""
        with self.view.write() as tx:
            tx.execute("INSERT INTO webhook_deliveries (webhook_id, position) VALUES (?, ?)"
                       " ON CONFLICT (webhook_id) DO NOTHING", (webhook_id, start))
            tx.execute("UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE webhook_id = ?"
                       " AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                       (owner, now + seconds, webhook_id, owner, now))
            if tx.rowcount != 1:
                return None
            row = tx.one(_STATE + " WHERE webhook_id = ?", (webhook_id,))
        return None if row is None else _state(row)

    def advance(self, webhook_id: int, owner: str, position: int, delivered: int, lease_until: float) -> bool:
        """Record `position` as taken (`delivered`: events sent by this step, 0 for a skip) and
        renew the lease. False if the lease was lost meanwhile: the new holder resends from its
        checkpoint."""
        with self.view.write() as tx:
            tx.execute("UPDATE webhook_deliveries SET position = ?, failures = 0, next_attempt_at = 0,"
                       " last_error = NULL, delivered = delivered + ?, lease_until = ? WHERE webhook_id = ?"
                       " AND lease_owner = ? AND position < ?",
                       (position, delivered, lease_until, webhook_id, owner, position))
            return tx.rowcount == 1

    def fail(self, webhook_id: int, owner: str, error: str, now: float, base: float, cap: float,
             park_after: int) -> bool:
        """Count a failed attempt; the next waits base * 2^(failures-1) seconds (at most `cap`).
        The `park_after`-th failure in a row parks the webhook. True if it is parked now."""
        with self.view.write() as tx:
            row = tx.one("SELECT failures FROM webhook_deliveries WHERE webhook_id = ? AND lease_owner = ?",
                         (webhook_id, owner))
            if row is None:
                return False
            failures = row["failures"] + 1
            parked = failures >= park_after
            tx.execute("UPDATE webhook_deliveries SET failures = ?, parked = ?, next_attempt_at = ?, last_error = ?"
                       " WHERE webhook_id = ?",
                       (failures, int(parked), now + min(cap, base * 2 ** (failures - 1)), error[:ERROR_MAX],
                        webhook_id))
            return parked

    def unpark(self, webhook_id: int) -> int | None:
        with self.view.write() as tx:
            tx.execute("UPDATE webhook_deliveries SET parked = 0, failures = 0, next_attempt_at = 0"
                       " WHERE webhook_id = ? AND parked = 1", (webhook_id,))
            if tx.rowcount != 1:
                return None
            return int(tx.scalar("SELECT position FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,)))

    def release(self, owner: str) -> None:
        """Give up this process's leases (on shutdown), so another process takes over at once."""
        with self.view.write() as tx:
            tx.execute("UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?",
                       (owner,))
