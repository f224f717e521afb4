"""/api/v1/system: instance settings, provider settings, the vector count."""

from __future__ import annotations


from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from msgspec import Meta

from api.errors import ErrorBody
from api.presenters import request_id
from api.presenters.chat import FORBIDDEN
from application import search, system
from application.ledger import Context

COMMON = {"sync_to_thread": True}
SettingName = Annotated[str, Meta(min_length=1, max_length=100)]
SettingValue = Annotated[str, Meta(max_length=10_000)]


class UpdateEnvError(msgspec.Struct):
    """`{"newValues": {}, "error": "..."}`: the update-env route's error body."""

    newValues: dict[str, str]
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> UpdateEnvError | ErrorBody:
        return ErrorBody(message) if status == 403 else cls({}, message)


class SettingsOut(msgspec.Struct):
    settings: dict[str, system.SettingValue]


class VectorCount(msgspec.Struct):
    vectorCount: int


Settings = Annotated[dict[SettingName, SettingValue], Meta(max_length=200)]


class UpdatedEnv(msgspec.Struct):
    newValues: dict[str, str]
    error: str | bool


class SystemV1Controller(Controller):
    path = "/system"
    tags = ["System Settings"]

    @get("/", operation_id="v1SystemSettings", **COMMON)
    def settings(self, ctx: Context, request: Request) -> SettingsOut:
        """Provider settings: public values in plain text, secrets only as `true`/`false`."""
        return SettingsOut(system.current_settings(ctx, request.user))

    @get("/vector-count", operation_id="v1VectorCount", **COMMON)
    def vector_count(self, ctx: Context, request: Request) -> VectorCount:
        return VectorCount(search.vector_count(ctx, request.user))

    @post("/update-env", operation_id="v1UpdateEnv", responses=FORBIDDEN, status_code=200, opt={"error_shape": UpdateEnvError}, **COMMON)
    def update_env(self, ctx: Context, request: Request, data: Settings) -> UpdatedEnv:
        """Admins only. Secret values (API keys) go to the secrets store and never into an event
        or a response; the event records which key changed and who changed it."""
        values, error = system.update_env(ctx, system.UpdateEnv(principal=request.user, correlation_id=request_id(request),
                                                              values=data))
        return UpdatedEnv(values, error or False)

    @get("/env-dump", operation_id="v1EnvDump", media_type="text/plain", **COMMON)
    def env_dump(self, ctx: Context, request: Request) -> bytes:
        """Requires an admin key (upstream's needs none). Settings are already persisted as
        events and in the secrets store, so there is nothing to write: 200, empty body."""
        system.check_env_dump(request.user)
        return b""
