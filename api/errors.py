"""Errors, in one place: every exception a request can end in becomes a 4xx (or 5xx) JSON answer
in the error shape of the route's family, and the OpenAPI documents each status a route can
send with the body it really has.

A route family chooses its shape with `opt={"error_shape": Shape}` on its controller or
handler (default `ErrorBody`, `{"error": "..."}`). A shape is a msgspec Struct with a
classmethod `of(message, status)`. A handler lists the statuses its use cases may raise
beyond the common ones with `opt={"raises": (404, 409)}` (ints or `DomainError` subclasses),
and where upstream answers a status of its own for an error, `opt={"error_status": {409: 400}}`;
`document_errors(app)` adds the common ones (400 for bad input, 403, 413, 429, 503, ...) to
every route's OpenAPI responses, so nobody has to remember them. No route catches
`DomainError` itself."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, ClassVar

import msgspec
import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from litestar import Litestar, Request, Response
from litestar.connection import Request as BaseRequest
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from domain.errors import DomainError
from projections.runner import ProjectionLagging
from projections.stall import ProjectionStalled

log = logging.getLogger("ledgerllm.api")

NO_VALID_KEY = "No valid api key found."
INTERNAL = "Internal server error"


# shapes -------------------------------------------------------------------------------------
class ErrorBody(msgspec.Struct):
    """`{"error": "..."}`: the default error body, and upstream's on most routes."""

    error: str

    @classmethod
    def of(cls, message: str, status: int) -> ErrorBody:
        return cls(message)


class SuccessError(msgspec.Struct):
    """`{"success": false, "error": "..."}`: upstream's admin and document routes."""

    success: bool
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> SuccessError:
        return cls(False, message)


def shape_of(request: Request) -> Any:
    handler = request.scope.get("route_handler")
    opt = getattr(handler, "opt", None) or {}
    return opt.get("error_shape", ErrorBody)


def error_response(request: Request, message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    opt = getattr(request.scope.get("route_handler"), "opt", None) or {}
    status = opt.get("error_status", {}).get(status, status)
    return Response(shape_of(request).of(message, status), status_code=status, headers=headers,
                    media_type="application/json")


# handlers -----------------------------------------------------------------------------------
def _validation_message(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for d in details:
        if isinstance(d, dict):
            key = d.get("key") or d.get("source") or "body"
            parts.append(f"{key}: {d.get('message', 'invalid')}")
    detail = exc.detail or "Invalid request"
    return f"{detail} ({'; '.join(parts)})" if parts else detail


def handle_http(request: Request, exc: HTTPException) -> Response:
    message = _validation_message(exc) if isinstance(exc, ValidationException) else exc.detail
    if exc.status_code >= 500:
        log.error("request %s failed: %s", request.scope.get("state", {}).get("request_id"), message)
        message = INTERNAL
    return error_response(request, message, exc.status_code, exc.headers)


def handle_domain(request: Request, exc: DomainError) -> Response:
    return error_response(request, str(exc), exc.status, getattr(exc, "headers", None))


def handle_conflict(request: Request, exc: IntegrityError) -> Response:
    return error_response(request, "The record was changed by another request; try again.", 409)


def handle_unavailable(request: Request, exc: ProjectionLagging) -> Response:
    log.error("read model lagging: %s", exc)
    return error_response(request, "The read model is catching up; try again shortly.", 503, {"Retry-After": "1"})


def handle_store_unavailable(request: Request, exc: Exception) -> Response:
    """PostgreSQL unreachable, or every pooled connection busy for the pool's wait (PG_POOL_MAX
    reached under load): the client may retry; nothing was stored."""
    log.warning("store unavailable: %s: %s", type(exc).__name__, exc)
    return error_response(request, "The store is unavailable or busy; try again shortly.", 503, {"Retry-After": "1"})


def handle_stalled(request: Request, exc: ProjectionStalled) -> Response:
    return error_response(request, str(exc), 503)


def handle_undecodable(request: Request, exc: UnicodeDecodeError) -> Response:
    """A form field that is not valid UTF-8 (Litestar's multipart parser decodes every non-file
    field): bad input, never a 500."""
    return error_response(request, "The request body is not valid: a form field is not UTF-8 text.", 400)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in request %s", request.scope.get("state", {}).get("request_id"))
    return Response({"error": INTERNAL}, status_code=500)


EXCEPTION_HANDLERS = {
    HTTPException: handle_http,
    DomainError: handle_domain,
    IntegrityError: handle_conflict,
    ProjectionLagging: handle_unavailable,
    ProjectionStalled: handle_stalled,
    OperationalError: handle_store_unavailable,
    InterfaceError: handle_store_unavailable,
    psycopg.OperationalError: handle_store_unavailable,
    UnicodeDecodeError: handle_undecodable,
    Exception: handle_unexpected,
}


class JsonRequest(BaseRequest):
    """A request whose undecodable JSON body (invalid UTF-8, nesting too deep for the decoder)
    is a 400 like any other malformed JSON, never a 500."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except (UnicodeDecodeError, RecursionError) as e:
            reason = "it is not valid UTF-8" if isinstance(e, UnicodeDecodeError) else "it is nested too deeply"
            raise ClientException(f"The request body is not valid JSON: {reason}.") from None


# the OpenAPI of errors ----------------------------------------------------------------------
class ErrorDocs:
    """Which statuses every route may answer, and what each means."""

    descriptions: ClassVar[dict[int, str]] = {
        400: "Bad input: malformed JSON, a value of the wrong type or out of range, a broken rule.",
        401: "No credential, or multi-user mode is required for this route.",
        403: "No valid API key (or session), or the key's scopes or its user's role do not allow this.",
        404: "Not found.",
        409: "A conflicting record exists, or a concurrent change won; try again.",
        413: "The request body is larger than the server accepts.",
        422: "The input is well-formed but cannot be processed.",
        429: "Too many requests for this key or address; see Retry-After.",
        502: "The model provider failed.",
        503: "A read model is catching up or unavailable, the store is unreachable or busy, or a service is "
             "not configured; see Retry-After.",
        504: "The model provider timed out.",
    }

    @classmethod
    def statuses(cls, handler: HTTPRouteHandler) -> set[int]:
        opt = handler.opt or {}
        params = set(handler.parsed_fn_signature.parameters)
        found: set[int] = set()
        if not opt.get("exclude_from_auth"):
            found |= {401, 403, 429}
        if params - {"self", "request", "state", "ctx", "scope"} or "data" in params:
            found.add(400)
        if "data" in params:
            found.add(413)
        if not opt.get("no_store"):
            found.add(503)
            if not handler.http_methods <= {"GET", "HEAD", "OPTIONS"}:
                found.add(409)
        for raised in opt.get("raises", ()):
            found.add(raised if isinstance(raised, int) else raised.status)
        remap = opt.get("error_status", {})
        return {remap.get(status, status) for status in found}


def document_errors(app: Litestar) -> None:
    """Give every route's OpenAPI a response for each status it can send, in its error shape.
    Statuses a route documents itself (in `responses`) are kept as they are."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.include_in_schema:
                continue
            shape = (handler.opt or {}).get("error_shape", ErrorBody)
            responses = dict(handler.responses or {})
            for status in sorted(s for s in ErrorDocs.statuses(handler) if s >= 400):  # 2xx: the route's own
                responses.setdefault(status, ResponseSpec(
                    shape, description=ErrorDocs.descriptions.get(status, HTTPStatus(status).phrase),
                    generate_examples=False, media_type="application/json"))
            handler.responses = responses


def raises(*errors: int | type[DomainError]) -> dict[str, Any]:
    """`opt` for a handler whose use cases may answer these statuses beyond the common ones."""
    return {"raises": tuple(errors)}


def statuses(errors: Iterable[int | type[DomainError]]) -> list[int]:
    return sorted(e if isinstance(e, int) else e.status for e in errors)
