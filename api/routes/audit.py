"""`GET /api/v1/admin/audit`: the audit log (every event: who, with which key, in which request),
newest first, filtered and paginated; `GET /api/v1/admin/audit/verify`: the store's digest
chain checked; `GET /api/v1/admin/projections`: each read model's position against the head.
Admins only (the single-user owner is an admin)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.params import Parameter

from api.auth import requires_role, requires_scope
from api.presenters.accounts import (
    AuditPageOut, ChainReportOut, ProjectionsOut, audit_page_out, chain_report_out, projection_status_out,
)
from application import audit
from application.ledger import Context
from domain.principal import Role


Bound = Annotated[str | None, Parameter(max_length=40, description="an event position or an ISO 8601 time (inclusive)")]


class AuditController(Controller):
    path = "/admin/audit"
    tags = ["Admin"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]

    @get("/", operation_id="v1AdminAudit", sync_to_thread=True)
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
        return audit_page_out(page)

    @get("/verify", operation_id="v1AdminAuditVerify", sync_to_thread=True)
    def verify(
        self, ctx: Context,
        expect: Annotated[str | None, Parameter(max_length=100, description="POSITION:DIGEST, an anchor from an "
                                                                            "earlier check")] = None,
    ) -> ChainReportOut:
        """Walk the digest chain over every stored event (as `ledgerllm audit verify`). 200 with
        `intact: false` and the problems (altered, inserted, removed, truncated) when tampered."""
        from infrastructure.chain import verify_chain

        anchor = audit.parse_anchor(expect)
        report = verify_chain(ctx.ledger.recorder, expect=anchor)
        return chain_report_out(report)


class ProjectionsController(Controller):
    path = "/admin/projections"
    tags = ["Admin"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]

    @get("/", operation_id="v1AdminProjections", sync_to_thread=True)
    def status(self, state: State) -> ProjectionsOut:
        """Each read model's stored position, the head of the store, how far behind it is and,
        when it stopped at an event it cannot apply, that event (position, type, error)."""
        runtime = state.runtime
        head = runtime.ctx.ledger.recorder.max_notification_id() or 0
        return ProjectionsOut([projection_status_out(r.name, r.position(), head, r.stall) for r in runtime.runners])
