"""Reading the audit log, and the filters `ledgerllm events`, `ledgerllm audit` and
`GET /api/v1/admin/audit` share: a user (id or username), a key id, an event type (qualified
name or prefix) and time bounds (ISO 8601 time or event position, both inclusive)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from application.access import check_admin
from application.views import AccountsView, AuditView
from application.rows import AuditPage, AuditRow  # noqa: F401  (AuditRow: what a page holds)
from domain.errors import InvalidInput
from domain.principal import Principal
from domain.timefmt import utc

if TYPE_CHECKING:
    from application.ledger import Context

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class Bound(msgspec.Struct, frozen=True):
    """One end of a range: an event position or a moment (exactly one is set)."""

    position: int | None = None
    moment: datetime | None = None

    def at_or_after(self, position: int, moment: datetime) -> bool:
        if self.position is not None:
            return position >= self.position
        return moment >= self.moment  # type: ignore[operator]

    def at_or_before(self, position: int, moment: datetime) -> bool:
        if self.position is not None:
            return position <= self.position
        return moment <= self.moment  # type: ignore[operator]


def parse_bound(value: str | None, name: str) -> Bound | None:
    """`1234` (a position) or an ISO 8601 time (`2026-01-02`, `2026-01-02T03:04:05Z`; naive is UTC)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit() and len(text) <= 18:
        return Bound(position=int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be an event position or an ISO 8601 time like 2026-01-02T03:04:05Z") from None
    try:
        return Bound(moment=utc(moment))
    except ValueError as e:
        raise InvalidInput(f"{name}: {e}") from None


def parse_anchor(value: str | None) -> tuple[int, bytes] | None:
    """`POSITION:DIGEST` (hex), as an earlier chain check printed it."""
    if value is None or not value.strip():
        return None
    position, _, digest = value.strip().partition(":")
    try:
        if not (position.isascii() and position.isdigit() and len(position) <= 18) or len(digest) != 64:
            raise ValueError  # at most 18 digits: a position fits a 64-bit column
        return int(position), bytes.fromhex(digest)
    except ValueError:
        raise InvalidInput("expect must be POSITION:DIGEST as an earlier chain check printed it, "
                           "e.g. 1234:9f86d081884c7d65...") from None


def parse_type(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > 100 or not _TYPE.fullmatch(value.strip()):
        raise InvalidInput("type must be an event type like ApiKey.Issued, or a prefix of one like ApiKey")
    return value.strip()


def parse_id(value: str | int | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"{name} must be a number")
    return int(text)


def is_username(value: str | None) -> bool:
    return value is not None and bool(value.strip()) and not value.strip().isdigit()


def resolve_user(accounts: AccountsView | None, value: str | None) -> int | None:
    """A user id, or the id of the user with that name (a deleted one too: the log outlives it).
    The accounts view is read only for a name."""
    if not is_username(value):
        return parse_id(value, "user")
    assert accounts is not None and value is not None, "a username needs the accounts view"
    found = accounts.user_id_named(value.strip())
    if found is None:
        raise InvalidInput(f"no user named {value.strip()!r}")
    return found


class AuditQuery(msgspec.Struct, frozen=True):
    user_id: int | None = None
    key_id: int | None = None
    type: str | None = None
    since: Bound | None = None
    until: Bound | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def audit_query(accounts: AccountsView | None, *, user: str | None = None, key: str | int | None = None,
                type: str | None = None, since: str | None = None, until: str | None = None,
                limit: str | int | None = None, offset: str | int | None = None) -> AuditQuery:
    """Check and convert raw filter values; a bad one raises InvalidInput (a 400)."""
    return AuditQuery(
        user_id=resolve_user(accounts, user), key_id=parse_id(key, "key"), type=parse_type(type),
        since=parse_bound(since, "since"), until=parse_bound(until, "until"),
        limit=_bounded(limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT), offset=_bounded(offset, "offset", 0, 0, 10**9),
    )


def _bounded(value: str | int | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None
    if not low <= number <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return number


def read_audit(audit: AuditView, query: AuditQuery) -> AuditPage:
    """Newest first. Catches the view up first, so it shows every event stored so far."""
    audit.catch_up()
    return audit.page(query)


def search_audit(ctx: Context, principal: Principal, query: AuditQuery) -> AuditPage:
    """The audit log for an admin (with the `admin` scope): every event, whoever acted."""
    check_admin(principal)
    return read_audit(ctx.audit, query)
