"""`GET /api/v1/admin/audit`: the audit log (every event: who, with which key, in which request),
newest first, filtered and paginated. Admins only (the single-user owner is an admin)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter

from api.auth import requires_role, requires_scope
from api.errors import FORBIDDEN_RESPONSE
from application import audit
from application.ledger import Context
from domain.principal import Role


class AuditEventOut(msgspec.Struct, rename="camel"):
    position: int
    time: str
    actor_user_id: int | None
    actor_api_key_id: int | None
    correlation_id: str | None
    type: str
    aggregate_id: str
    summary: str


class AuditPageOut(msgspec.Struct, rename="camel"):
    events: list[AuditEventOut]
    total: int
    has_more: bool


Bound = Annotated[str | None, Parameter(max_length=40, description="an event position or an ISO 8601 time (inclusive)")]


class AuditController(Controller):
    path = "/admin/audit"
    tags = ["Admin"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]

    @get("/", operation_id="v1AdminAudit", sync_to_thread=True, responses=FORBIDDEN_RESPONSE)
    def list_events(
        self, ctx: Context, request: Request,
        user: Annotated[str | None, Parameter(max_length=200, description="acting user: id or username")] = None,
        key: Annotated[str | None, Parameter(max_length=20, description="API key id used")] = None,
        event_type: Annotated[str | None, Parameter(query="type", max_length=100,
                                                     description="ApiKey.Issued, or a prefix like ApiKey")] = None,
        since: Bound = None, until: Bound = None,
        limit: Annotated[str | None, Parameter(max_length=10, description="1 to 1000, default 100")] = None,
        offset: Annotated[str | None, Parameter(max_length=18, description="rows to skip, default 0")] = None,
    ) -> AuditPageOut:
        """The audit log, newest first: `{events, total, hasMore}`; a bad filter answers 400."""
        query = audit.audit_query(ctx.accounts, user=user, key=key, type=event_type, since=since, until=until,
                                  limit=limit, offset=offset)
        page = audit.search_audit(ctx, request.user, query)
        return AuditPageOut([AuditEventOut(**msgspec.structs.asdict(e)) for e in page.events], page.total,
                            page.has_more)
