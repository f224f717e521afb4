"""Response shapes as AnythingLLM and OpenAI clients parse them, one module per slice
(`accounts`, `library`, `chat`), and the request helpers every route uses."""

from __future__ import annotations

from litestar import Request


def request_id(request: Request) -> str:
    return request.scope["state"]["request_id"]


def parse_id(value: str, what: str) -> int:
    """Path ids arrive as text, as upstream's do; a non-number is a 400, not a 404 or a 500."""
    from domain.errors import InvalidInput

    if not value.isdigit() or len(value) > 18 or int(value) < 1:
        raise InvalidInput(f"Invalid {what} id")
    return int(value)
