"""API key management, at upstream's internal paths.

Single-user mode: /api/system/*; multi-user mode: /api/admin/* for admins. Both accept a
session token or an API key with the `admin` scope. Listings mask the secret (upstream
returns it in full); the secret is shown once, in the generate response."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, MediaType, Request, delete, get, post
from litestar.params import Parameter
from msgspec import Meta

from api.auth import requires_role, requires_scope
from api.errors import raises
from api.presenters import parse_id, request_id
from api.presenters.accounts import GeneratedKey, KeyList, key_out
from api.schema import IdPath, PublicId
from application import apikeys, users
from application.ledger import Context
from domain.apikeys import MAX_RATE_LIMIT, parse_duration
from domain.errors import ApiKeyNotFound, MultiUserModeRequired, UserNotFound
from domain.principal import ALL_SCOPES, Principal, Role

Scope = Annotated[str, Meta(max_length=20, description=f"one of {', '.join(ALL_SCOPES)}")]


class GenerateKeyBody(msgspec.Struct):
    name: Annotated[str, Meta(max_length=200)] | None = None
    scopes: Annotated[list[Scope], Meta(max_length=8)] | None = None
    expiresIn: Annotated[str, Meta(max_length=16, pattern=r"^\s*[0-9]{1,6}[smhdw]\s*$", examples=["30d"],
                                   description="a number and a unit (s, m, h, d, w), at most 100 years")] | None = None
    rateLimit: Annotated[int, Meta(ge=1, le=MAX_RATE_LIMIT, description="requests per minute")] | None = None
    userId: PublicId | None = None  # admins may issue keys to another user


KeyId = IdPath
# Upstream answers a revocation with 200 and an empty body; so do we, documented as such.
REVOKED = {"media_type": MediaType.TEXT, "opt": raises(ApiKeyNotFound), "sync_to_thread": True}


def _generate(ctx: Context, request: Request, data: GenerateKeyBody | None) -> GeneratedKey:
    data = data or GenerateKeyBody()
    principal: Principal = request.user
    new = apikeys.create_api_key(ctx, apikeys.CreateApiKey(
        principal=principal, correlation_id=request_id(request), user_id=data.userId, name=data.name,
        scopes=tuple(data.scopes) if data.scopes is not None else None,
        expires_in=parse_duration(data.expiresIn) if data.expiresIn else None, rate_limit=data.rateLimit,
    ))
    return GeneratedKey(key_out(apikeys.KeyRow(new.key, new.owner, True), secret=new.secret, owner_as_id=True), None)


def _list(ctx: Context, include_revoked: bool) -> KeyList:
    return KeyList([key_out(k) for k in apikeys.list_api_keys(ctx, include_inactive=include_revoked)], None)


def _revoke(ctx: Context, request: Request, key_id: str) -> str:
    apikeys.revoke_api_key(ctx, apikeys.RevokeApiKey(
        principal=request.user, correlation_id=request_id(request), key_id=parse_id(key_id, "API key")))
    return ""  # upstream: 200, an empty body


IncludeRevoked = Annotated[bool, Parameter(query="includeRevoked", description="also list revoked and expired keys")]
COMMON = {"sync_to_thread": True}


class SingleUserKeysController(Controller):
    path = "/api/system"
    tags = ["API keys"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]

    @staticmethod
    def _single_user(ctx: Context) -> None:
        if ctx.accounts.is_multi_user():
            raise MultiUserModeRequired()

    @get("/api-keys", operation_id="systemListApiKeys", **COMMON)
    def list_keys(self, ctx: Context, include_revoked: IncludeRevoked = False) -> KeyList:
        self._single_user(ctx)
        return _list(ctx, include_revoked)

    @post("/generate-api-key", operation_id="systemGenerateApiKey", status_code=200, opt=raises(UserNotFound),
          **COMMON)
    def generate(self, ctx: Context, request: Request, data: GenerateKeyBody | None = None) -> GeneratedKey:
        self._single_user(ctx)
        return _generate(ctx, request, data)

    @delete("/api-key/{key_id:str}", operation_id="systemDeleteApiKey", status_code=200, **REVOKED)
    def revoke(self, ctx: Context, request: Request, key_id: KeyId) -> str:
        """200 with an empty body, as upstream; an unknown id is 404."""
        self._single_user(ctx)
        return _revoke(ctx, request, key_id)


class AdminKeysController(Controller):
    path = "/api/admin"
    tags = ["API keys"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]

    @get("/api-keys", operation_id="adminListApiKeys", **COMMON)
    def list_keys(self, ctx: Context, include_revoked: IncludeRevoked = False) -> KeyList:
        users.require_multi_user(ctx)
        return _list(ctx, include_revoked)

    @post("/generate-api-key", operation_id="adminGenerateApiKey", status_code=200, opt=raises(UserNotFound),
          **COMMON)
    def generate(self, ctx: Context, request: Request, data: GenerateKeyBody | None = None) -> GeneratedKey:
        users.require_multi_user(ctx)
        return _generate(ctx, request, data)

    @delete("/delete-api-key/{key_id:str}", operation_id="adminDeleteApiKey", status_code=200, **REVOKED)
    def delete_key(self, ctx: Context, request: Request, key_id: KeyId) -> str:
        """Revokes the key (its history stays): 200 with an empty body, as upstream; an unknown id is 404."""
        users.require_multi_user(ctx)
        return _revoke(ctx, request, key_id)

    @delete("/api-key/{key_id:str}", operation_id="adminRevokeApiKey", status_code=200, **REVOKED)
    def revoke(self, ctx: Context, request: Request, key_id: KeyId) -> str:
        """200 with an empty body; an unknown id is 404."""
        users.require_multi_user(ctx)
        return _revoke(ctx, request, key_id)
