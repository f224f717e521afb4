"""/api/v1/system: instance settings, provider settings, the vector count."""

from __future__ import annotations


from typing import Any

from litestar import Controller, Request, Response, get, post

from api.presenters import request_id
from application import search, system
from application.ledger import Context
from domain.errors import DomainError

COMMON = {"sync_to_thread": True}


class SystemV1Controller(Controller):
    path = "/system"
    tags = ["System Settings"]

    @get("/", operation_id="v1SystemSettings", **COMMON)
    def settings(self, ctx: Context, request: Request) -> dict[str, Any]:
        """Provider settings: public values in plain text, secrets only as `true`/`false`."""
        return {"settings": system.current_settings(ctx, request.user)}

    @get("/vector-count", operation_id="v1VectorCount", **COMMON)
    def vector_count(self, ctx: Context, request: Request) -> dict[str, Any]:
        return {"vectorCount": search.vector_count(ctx, request.user)}

    @post("/update-env", operation_id="v1UpdateEnv", status_code=200, **COMMON)
    def update_env(self, ctx: Context, request: Request, data: dict[str, Any]) -> Response[dict[str, Any]]:
        """Admins only. Secret values (API keys) go to the secrets store and never into an event
        or a response; the event records which key changed and who changed it."""
        try:
            values, error = system.update_env(ctx, request.user, request_id(request), data)
        except DomainError as e:
            return Response({"newValues": {}, "error": str(e)}, status_code=e.status)
        return Response({"newValues": values, "error": error or False})

    @get("/env-dump", operation_id="v1EnvDump", **COMMON)
    def env_dump(self, ctx: Context, request: Request) -> Response[bytes]:
        """Requires an admin key (upstream's needs none). Settings are already persisted as
        events and in the secrets store, so there is nothing to write: 200, empty body."""
        from application.access import check_admin

        check_admin(request.user)
        return Response(b"", media_type="text/plain")
