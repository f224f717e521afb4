"""The audit log: one row per stored event of every type, with who acted, with which key,
in which request, and a one-line summary.

Unlike the other projections it takes every topic, so it overrides `wants` and `apply`
instead of registering `@handles` per event class. The helpers that describe an event
(`event_type`, `payload`, `details`, `summary`) are shared with `ledgerllm events`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import Notification

from application.rows import AuditPage, AuditRow
from domain.users import User
from projections.base import SqlProjection, Tx, iso
from projections.readmodel import ReadModelView

if TYPE_CHECKING:
    from application.audit import AuditQuery

# Fields every event carries (they have their own columns), not part of its payload.
META_FIELDS = frozenset({
    "originator_id", "originator_version", "timestamp", "originator_topic",
    "actor_user_id", "actor_api_key_id", "correlation_id",
})
# Content, not a fact about the change: never in a one-line summary.
TEXT_FIELDS = frozenset({"prompt", "response", "bio", "error"})
SUMMARY_FIELDS = 5
SUMMARY_MAX = 120
VALUE_MAX = 40


def event_type(event: Any) -> str:
    """The event class's qualified name, e.g. `ApiKey.Issued`."""
    return type(event).__qualname__


def topic_type(topic: str) -> str:
    """The qualified name in a stored topic (`domain.apikeys:ApiKey.Issued` → `ApiKey.Issued`)."""
    return topic.partition(":")[2] or topic


def type_matches(qualname: str, wanted: str) -> bool:
    """`wanted` names the event class (`ApiKey.Issued`) or a prefix of it (`ApiKey`)."""
    return qualname == wanted or qualname.startswith(wanted + ".")


def payload(event: Any) -> dict[str, Any]:
    """The event's own fields: everything but the ids, version, time and actor stamp."""
    return {k: v for k, v in vars(event).items() if k not in META_FIELDS}


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str):
        short = value if len(value) <= VALUE_MAX else value[: VALUE_MAX - 1] + "…"
        return json.dumps(short, ensure_ascii=False)
    return None  # lists, dicts, nested records: too long for one line


def details(event: Any) -> str:
    """The first few scalar payload fields as `name=value`; never hashes or long text."""
    parts = []
    for name, value in payload(event).items():
        if value is None or name in TEXT_FIELDS or name.endswith("_hash"):
            continue
        shown = _scalar(value)
        if shown is not None:
            parts.append(f"{name}={shown}")
        if len(parts) == SUMMARY_FIELDS:
            break
    return " ".join(parts)


def summary(event: Any) -> str:
    """One line, at most SUMMARY_MAX characters: `ApiKey.Issued key_id=3 user_id=2 name="ci" ...`."""
    line = f"{event_type(event)} {details(event)}".strip()
    return line if len(line) <= SUMMARY_MAX else line[: SUMMARY_MAX - 1] + "…"


class AuditLogProjection(SqlProjection):
    name = "audit_log"
    tables = ["audit_log"]
    schema = [
        """CREATE TABLE IF NOT EXISTS audit_log (
            position BIGINT PRIMARY KEY, occurred_at TEXT NOT NULL, actor_user_id BIGINT,
            actor_api_key_id BIGINT, correlation_id TEXT, type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
            summary TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log (actor_user_id, position)",
        "CREATE INDEX IF NOT EXISTS audit_log_key ON audit_log (actor_api_key_id, position)",
        "CREATE INDEX IF NOT EXISTS audit_log_type ON audit_log (type, position)",
        "CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (occurred_at)",
    ]

    def wants(self, notification: Notification) -> bool:
        return True

    def topics(self) -> frozenset[str] | None:
        return None

    def apply(self, tx: Tx, event: Any, position: int = 0) -> None:
        self.position = position
        tx.execute(
            "INSERT INTO audit_log (position, occurred_at, actor_user_id, actor_api_key_id, correlation_id, type,"
            " aggregate_id, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (position, iso(event.timestamp), getattr(event, "actor_user_id", None),
             getattr(event, "actor_api_key_id", None), getattr(event, "correlation_id", None), event_type(event),
             str(event.originator_id), summary(event)),
        )
        if type(event) is User.Erased:
            # A profile update's summary shows the picture's file name: the user's content.
            tx.execute("UPDATE audit_log SET summary = ? WHERE aggregate_id = ? AND type = ? AND position < ?",
                       ("User.ProfileUpdated (erased)", str(event.originator_id), "User.ProfileUpdated", position))


class AuditLog(ReadModelView):
    """Queries on one row per stored event."""

    def page(self, query: AuditQuery) -> AuditPage:
        where, params = _where(query)
        with self._read() as tx:
            total = int(tx.scalar(f"SELECT COUNT(*) FROM audit_log{where}", params))
            rows = tx.all(
                "SELECT position, occurred_at, actor_user_id, actor_api_key_id, correlation_id, type, aggregate_id,"
                f" summary FROM audit_log{where} ORDER BY position DESC LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset])
        events = [AuditRow(r["position"], r["occurred_at"], r["actor_user_id"], r["actor_api_key_id"],
                           r["correlation_id"], r["type"], r["aggregate_id"], r["summary"]) for r in rows]
        return AuditPage(events, total, query.offset + len(events) < total)


def _where(query: AuditQuery) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if query.user_id is not None:
        clauses.append("actor_user_id = ?")
        params.append(query.user_id)
    if query.key_id is not None:
        clauses.append("actor_api_key_id = ?")
        params.append(query.key_id)
    if query.type is not None:
        clauses.append("(type = ? OR substr(type, 1, ?) = ?)")
        params += [query.type, len(query.type) + 1, query.type + "."]
    for bound, op in ((query.since, ">="), (query.until, "<=")):
        if bound is not None and bound.position is not None:
            clauses.append(f"position {op} ?")
            params.append(bound.position)
        elif bound is not None and bound.moment is not None:
            clauses.append(f"occurred_at {op} ?")
            params.append(iso(bound.moment))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
