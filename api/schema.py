"""Constrained types shared by the routes' request and response Structs.

Litestar validates every body, query and path parameter against these before a handler runs
(a bad value is a 400 in the route's error shape) and the OpenAPI states the same rules. Every
integer that reaches a store fits a signed 64-bit column; public ids and counts also fit what
JavaScript clients can hold exactly (2**53 - 1)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar.params import Parameter
from msgspec import Meta

INT64_MAX = 2**63 - 1
JS_SAFE_MAX = 2**53 - 1

# numbers
PublicId = Annotated[int, Meta(ge=1, le=JS_SAFE_MAX, description="a public integer id")]
Count = Annotated[int, Meta(ge=0, le=JS_SAFE_MAX)]
PageIndex = Annotated[int, Meta(ge=0, le=1_000_000, description="a page number, from 0")]
Limit = Annotated[int, Meta(ge=1, le=1000)]
Score = Annotated[float, Meta(ge=-1.0, le=1.0)]
Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]

# text
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Short = Annotated[str, Meta(max_length=255)]
Text = Annotated[str, Meta(max_length=100_000)]
Password = Annotated[str, Meta(max_length=1000)]

# upstream's loose booleans (`"suspended": 1`)
Flag = bool | Literal[0, 1]

# path and query parameters: ids arrive as text, as upstream's do. Query, path and header parameters give
# their limits to Parameter, which Litestar checks and documents; it does neither for a msgspec
# Meta inside a parameter's type (tests/e2e/test_openapi_and_compat.py keeps it so).
IdPath = Annotated[str, Parameter(pattern=r"^[0-9]{1,15}$", description="an integer id")]
SlugPath = Annotated[str, Parameter(min_length=1, max_length=200, description="a workspace slug")]
ThreadSlugPath = Annotated[str, Parameter(min_length=1, max_length=200, description="a thread slug")]
ShortPath = Annotated[str, Parameter(min_length=1, max_length=255, description="an embed or session id")]
SessionQuery = Annotated[str | None, Parameter(max_length=255, description="an API session id")]
LimitQuery = Annotated[int | None, Parameter(ge=1, le=1000, description="chats to return, 1 to 1000")]


def flag(value: Flag | None) -> bool | None:
    return None if value is None else bool(value)
