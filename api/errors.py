"""Every error answers `{"error": "..."}` with a 4xx status; a 500 never leaks exception text."""

from __future__ import annotations

import logging

import msgspec
from eventsourcing.persistence import IntegrityError
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from domain.errors import DomainError
from projections.runner import ProjectionLagging

log = logging.getLogger("ledgerllm.api")


class ErrorBody(msgspec.Struct):
    error: str


NO_VALID_KEY = "No valid api key found."
# The 403 body AnythingLLM really sends (its Swagger says `{message}`, which is wrong).
FORBIDDEN_RESPONSE = {403: ResponseSpec(ErrorBody, description=NO_VALID_KEY, examples=None)}


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
        message = "Internal server error"
    return Response({"error": message}, status_code=exc.status_code, headers=exc.headers)


def handle_domain(request: Request, exc: DomainError) -> Response:
    return Response({"error": str(exc)}, status_code=exc.status)


def handle_conflict(request: Request, exc: IntegrityError) -> Response:
    return Response({"error": "The record was changed by another request; try again."}, status_code=409)


def handle_unavailable(request: Request, exc: ProjectionLagging) -> Response:
    log.error("read model lagging: %s", exc)
    return Response({"error": "The read model is catching up; try again shortly."}, status_code=503,
                    headers={"Retry-After": "1"})


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in request %s", request.scope.get("state", {}).get("request_id"))
    return Response({"error": "Internal server error"}, status_code=500)


EXCEPTION_HANDLERS = {
    HTTPException: handle_http,
    DomainError: handle_domain,
    IntegrityError: handle_conflict,
    ProjectionLagging: handle_unavailable,
    Exception: handle_unexpected,
}
