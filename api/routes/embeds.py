"""Embed widgets over /api/v1/embed (admins): their settings and their chats."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, get, post, delete
from msgspec import UNSET, Meta, UnsetType

from api.errors import ErrorBody, raises
from api.presenters.chat import FORBIDDEN
from api.presenters import request_id
from api.schema import Short, ShortPath
from application import embeds
from application.ledger import Context

COMMON = {"sync_to_thread": True}
ChatLimit = Annotated[int, Meta(ge=1, le=1_000_000)]
Origins = Annotated[str, Meta(max_length=26_000)] | Annotated[list[Annotated[str, Meta(max_length=255)]],
                                                               Meta(max_length=100)]


# Upstream's strict check: `true` turns an option on, any other value (`"yes"`, 1, null) off.
UpstreamBool = Annotated[bool | str | int | float | None, Meta(description="true enables; any other value is false")]
_BOOLS = frozenset({"allow_model_override", "allow_temperature_override", "allow_prompt_override", "enabled"})


class EmbedSettingsBody(msgspec.Struct):
    """The settings an admin may give an embed; only the members sent are changed."""

    chat_mode: Literal["chat", "query"] | UnsetType = UNSET
    allowlist_domains: Origins | None | UnsetType = UNSET
    allow_model_override: UpstreamBool | UnsetType = UNSET
    allow_temperature_override: UpstreamBool | UnsetType = UNSET
    allow_prompt_override: UpstreamBool | UnsetType = UNSET
    enabled: UpstreamBool | UnsetType = UNSET
    max_chats_per_day: ChatLimit | None | UnsetType = UNSET
    max_chats_per_session: ChatLimit | None | UnsetType = UNSET
    message_limit: ChatLimit | None | UnsetType = UNSET

    def settings(self) -> embeds.EmbedSettings:
        return {f: (v is True) if f in _BOOLS else v for f in self.__struct_fields__
                if f in embeds.SETTING_FIELDS and (v := getattr(self, f)) is not UNSET}


class NewEmbedBody(EmbedSettingsBody):
    workspace_slug: Short | UnsetType = UNSET


class UpdateEmbedBody(EmbedSettingsBody):
    workspace_id: Annotated[int, Meta(ge=1, le=2**53 - 1)] | None = None


class EmbedWorkspace(msgspec.Struct):
    id: int
    name: str | None
    slug: str | None


class EmbedOut(msgspec.Struct):
    """Upstream's embed_configs row with its workspace and chat count."""

    id: int
    uuid: str
    enabled: bool
    chat_mode: str
    createdAt: str
    workspace: EmbedWorkspace
    chat_count: int
    allowlist_domains: list[str] | None
    allow_model_override: bool
    allow_temperature_override: bool
    allow_prompt_override: bool
    max_chats_per_day: int | None
    max_chats_per_session: int | None
    message_limit: int | None


def embed_out(e: embeds.EmbedRow) -> EmbedOut:
    s = e.settings
    return EmbedOut(
        e.id, e.uuid, bool(s.get("enabled", True)), str(s.get("chat_mode") or "query"), e.created_at,
        EmbedWorkspace(e.workspace_id, e.workspace_name, e.workspace_slug), e.chat_count,
        s.get("allowlist_domains"), bool(s.get("allow_model_override")),  # type: ignore[arg-type]
        bool(s.get("allow_temperature_override")), bool(s.get("allow_prompt_override")),
        s.get("max_chats_per_day"), s.get("max_chats_per_session"), s.get("message_limit"))  # type: ignore[arg-type]


class EmbedList(msgspec.Struct):
    embeds: list[EmbedOut]


class NewEmbed(msgspec.Struct):
    embed: EmbedOut
    error: None = None


class EmbedError(msgspec.Struct):
    """`{"embed": null, "error": "..."}`: the create route's error body."""

    embed: None
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> EmbedError | ErrorBody:
        return ErrorBody(message) if status == 403 else cls(None, message)


class EmbedChangeError(msgspec.Struct):
    """`{"success": false, "error": "..."}`: the update and delete routes' error body."""

    success: bool
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> EmbedChangeError | ErrorBody:
        return ErrorBody(message) if status == 403 else cls(False, message)


class Done(msgspec.Struct):
    success: bool
    error: None = None


class EmbedChatRow(msgspec.Struct):
    """Upstream's embed_chats row (without the caller's IP and host, which upstream leaks)."""

    id: int
    prompt: str
    response: str
    session_id: str
    include: bool
    embed_id: int
    createdAt: str


class EmbedChats(msgspec.Struct):
    chats: list[EmbedChatRow]


def _chats(rows: list[embeds.EmbedChat]) -> EmbedChats:
    return EmbedChats([EmbedChatRow(r.id, r.prompt, r.response, r.session_id, r.include, r.embed_id, r.created_at)
                       for r in rows])


class EmbedController(Controller):
    """Embed widgets (admins only). Unlike upstream, `allowlist_domains` of the wrong type is
    refused instead of silently opening the embed to every origin."""

    path = "/embed"
    tags = ["Embed"]

    @get("/", operation_id="v1ListEmbeds", **COMMON)
    def list_embeds(self, ctx: Context, request: Request) -> EmbedList:
        return EmbedList([embed_out(e) for e in embeds.list_embeds(ctx, request.user)])

    @post("/new", operation_id="v1CreateEmbed", responses=FORBIDDEN, status_code=200, opt={"error_shape": EmbedError, **raises(404)},
          **COMMON)
    def create(self, ctx: Context, request: Request, data: NewEmbedBody) -> NewEmbed:
        slug = data.workspace_slug if isinstance(data.workspace_slug, str) else None
        embed = embeds.create_embed(ctx, embeds.CreateEmbed(principal=request.user, correlation_id=request_id(request),
                                                            slug=slug, settings=data.settings()))
        return NewEmbed(embed_out(embed))

    @post("/{embed_uuid:str}", operation_id="v1UpdateEmbed", responses=FORBIDDEN, status_code=200,
          opt={"error_shape": EmbedChangeError, **raises(404)}, **COMMON)
    def update(self, ctx: Context, request: Request, embed_uuid: ShortPath, data: UpdateEmbedBody) -> Done:
        embeds.update_embed(ctx, embeds.UpdateEmbed(principal=request.user, correlation_id=request_id(request),
                                                    public_uuid=embed_uuid, settings=data.settings(),
                                                    workspace_id=data.workspace_id))
        return Done(True)

    @delete("/{embed_uuid:str}", operation_id="v1DeleteEmbed", responses=FORBIDDEN, status_code=200,
            opt={"error_shape": EmbedChangeError, **raises(404)}, **COMMON)
    def remove(self, ctx: Context, request: Request, embed_uuid: ShortPath) -> Done:
        embeds.delete_embed(ctx, embeds.DeleteEmbed(principal=request.user, correlation_id=request_id(request),
                                                    public_uuid=embed_uuid))
        return Done(True)

    @get("/{embed_uuid:str}/chats", operation_id="v1EmbedChats", opt=raises(404), **COMMON)
    def chats(self, ctx: Context, request: Request, embed_uuid: ShortPath) -> EmbedChats:
        """The widget's chats, newest first (404 for an unknown embed; upstream answers [])."""
        return _chats(embeds.embed_chats(ctx, request.user, embed_uuid, None))

    @get("/{embed_uuid:str}/chats/{session_uuid:str}", operation_id="v1EmbedSessionChats", opt=raises(404), **COMMON)
    def session_chats(self, ctx: Context, request: Request, embed_uuid: ShortPath, session_uuid: ShortPath) -> EmbedChats:
        return _chats(embeds.embed_chats(ctx, request.user, embed_uuid, session_uuid))
