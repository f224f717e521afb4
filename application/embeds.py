"""Embed widgets: admins create, list, change and delete them (the chat routes come later)."""

from __future__ import annotations

import uuid

import msgspec
from eventsourcing.persistence import IntegrityError

from application.access import check_admin
from application.chat import SendChat
from application.history import to_history
from application.ids import take_id
from application.ledger import Command, Context, PublicCommand
from application.ports import JsonObject
from application.rows import EmbedChat
from application.workspaces import get_workspace, get_workspace_by_id
from domain.chats import HistoryReset
from domain.embeds import Embed, EmbedChatSlot, embed_uuid, is_public_id
from domain.errors import DomainError, InvalidInput, NotFound
from domain.principal import Actor, Principal, Role


EmbedValue = str | bool | int | list[str] | None
EmbedSettings = dict[str, EmbedValue]
SETTING_FIELDS = frozenset({"chat_mode", "allowlist_domains", "allow_model_override", "allow_temperature_override",
                            "allow_prompt_override", "enabled", "max_chats_per_day", "max_chats_per_session",
                            "message_limit"})


class EmbedRow(msgspec.Struct, frozen=True):
    id: int
    uuid: str
    workspace_id: int
    workspace_name: str | None
    workspace_slug: str | None
    settings: EmbedSettings
    created_by: int
    created_at: str
    chat_count: int = 0


def _rows(ctx: Context, public_uuid: str | None = None) -> list[EmbedRow]:
    records = ctx.library.embeds(public_uuid)
    counts = ctx.chats.embed_chat_counts() if records else {}
    return [EmbedRow(**msgspec.structs.asdict(r), chat_count=counts.get(r.id, 0)) for r in records]


def list_embeds(ctx: Context, principal: Principal) -> list[EmbedRow]:
    check_admin(principal)
    return _rows(ctx)


def get_embed(ctx: Context, principal: Principal, public_uuid: str) -> EmbedRow:
    check_admin(principal)
    rows = _rows(ctx, public_uuid)
    if not rows:
        raise NotFound("Embed not found")
    return rows[0]


class CreateEmbed(Command, frozen=True, kw_only=True):
    slug: str | None
    settings: EmbedSettings


def create_embed(ctx: Context, cmd: CreateEmbed) -> EmbedRow:
    check_admin(cmd.principal)
    if not cmd.slug:
        raise InvalidInput("Workspace slug is required")
    workspace = get_workspace(ctx, cmd.slug)
    if workspace is None:
        raise NotFound("Workspace not found")
    actor = cmd.actor()
    public_uuid = str(uuid.uuid4())

    def attempt() -> EmbedRow:
        embed_id = take_id(ctx, "embeds", actor)
        embed = Embed.create(actor, embed_id, public_uuid, workspace.id, cmd.settings)
        ctx.save(embed, project=[ctx.library])
        return _rows(ctx, public_uuid)[0]

    return ctx.retrying(attempt)


class UpdateEmbed(Command, frozen=True, kw_only=True):
    public_uuid: str
    settings: EmbedSettings
    workspace_id: int | None = None  # move the embed to this workspace


def update_embed(ctx: Context, cmd: UpdateEmbed) -> None:
    check_admin(cmd.principal)
    workspace_id = cmd.workspace_id
    if workspace_id is not None and (not is_public_id(workspace_id) or get_workspace_by_id(ctx, workspace_id) is None):
        raise NotFound("Workspace not found")

    def attempt() -> None:
        embed = ctx.ledger.find(embed_uuid(cmd.public_uuid), Embed)
        if embed is None or embed.deleted:
            raise NotFound("Embed not found")
        if embed.update(cmd.actor(), cmd.settings, workspace_id):
            ctx.save(embed, project=[ctx.library])

    ctx.retrying(attempt)


class DeleteEmbed(Command, frozen=True, kw_only=True):
    public_uuid: str


def delete_embed(ctx: Context, cmd: DeleteEmbed) -> None:
    check_admin(cmd.principal)

    def attempt() -> None:
        embed = ctx.ledger.find(embed_uuid(cmd.public_uuid), Embed)
        if embed is None or not embed.delete(cmd.actor()):
            raise NotFound("Embed not found")
        ctx.save(embed, project=[ctx.library])

    ctx.retrying(attempt)


# the public widget ---------------------------------------------------------------------------
class WidgetError(DomainError):
    status = 403


class ChatLimitReached(DomainError):
    status = 429


def _widget(ctx: Context, public_uuid: str, origin: str | None) -> tuple[EmbedRow, Principal]:
    """The enabled embed and the user its chats are recorded for (its creator: there is no
    anonymous user here); the caller's Origin must be on the allowlist when one is set."""
    rows = _rows(ctx, public_uuid)
    if not rows or not rows[0].settings.get("enabled", True):
        raise NotFound("Embed not found or disabled")
    embed = rows[0]
    allowed = embed.settings.get("allowlist_domains")
    if allowed and (origin or "").rstrip("/") not in allowed:
        raise WidgetError("This origin may not use this embed.")
    owner = ctx.accounts.user(embed.created_by)
    if owner is None or owner.deleted or owner.suspended:
        raise NotFound("Embed not found or disabled")
    return embed, Principal(user_id=owner.id, username=owner.username, role=Role(owner.role))


def _check_session_id(session_id: str) -> str:
    if not 1 <= len(session_id) <= 255:
        raise InvalidInput("sessionId is required")
    return session_id


class ReserveWidgetChat(PublicCommand, frozen=True, kw_only=True):
    """A widget visitor's chat (the route has validated the body's types)."""

    public_uuid: str
    origin: str | None
    session_id: str
    message: str | None
    prompt: str | None = None
    temperature: float | None = None


def reserve_widget_chat(ctx: Context, cmd: ReserveWidgetChat) -> SendChat:
    """Reserve one of the embed's limited chats (recorded, so the limits hold across processes)
    and return the chat to run, as the embed's creator with only the overrides it allows."""
    embed, principal = _widget(ctx, cmd.public_uuid, cmd.origin)
    session_id = _check_session_id(cmd.session_id)
    if not cmd.message or not cmd.message.strip():
        raise InvalidInput("Message is empty")
    limits = embed.settings
    actor = principal.actor(cmd.correlation_id)
    day = ctx.clock.now().strftime("%Y-%m-%d")
    windows = []  # (window, chats the read model has seen in it, limit, refusal)
    if limits.get("max_chats_per_session"):
        windows.append((f"session:{session_id}", ctx.chats.embed_session_count(embed.id, session_id),
                        _limit(limits["max_chats_per_session"]), "This session has reached its chat limit."))
    if limits.get("max_chats_per_day"):
        windows.append((f"day:{day}", ctx.chats.embed_count_since(embed.id, day + "T00:00:00"),
                        _limit(limits["max_chats_per_day"]), "This embed has reached its daily chat limit."))
    for _, used, limit, refusal in windows:  # refused before anything is stored, unless racing
        if used >= limit:
            raise ChatLimitReached(refusal)
    for window, used, limit, refusal in windows:
        _reserve(ctx, actor, embed.id, window, used, limit, refusal)
    temperature = cmd.temperature if limits.get("allow_temperature_override") else None
    prompt = cmd.prompt if limits.get("allow_prompt_override") else None
    mode = limits.get("chat_mode", "query")
    return SendChat(principal=principal, correlation_id=cmd.correlation_id, slug=embed.workspace_slug or "",
                    message=cmd.message, mode=mode if isinstance(mode, str) else None, session_id=session_id,
                    temperature=temperature, system_prompt=prompt, embed_id=embed.id)


def _limit(value: EmbedValue) -> int:
    return value if isinstance(value, int) else int(str(value))


def _reserve(ctx: Context, actor: Actor, embed_id: int, window: str, used: int, limit: int, refusal: str) -> None:
    """Reserve the first free slot of `window` below `limit`, or refuse (429). Each slot is an
    aggregate saved at most once, so racing requests (in any process) never share one; the
    read model's count only says where to start looking."""
    for slot in range(min(used, limit), limit):
        try:
            ctx.save(EmbedChatSlot.reserve(actor, embed_id, window, slot))
            return
        except IntegrityError:
            continue
    raise ChatLimitReached(refusal)


def widget_history(ctx: Context, public_uuid: str, origin: str | None, session_id: str) -> list[JsonObject]:
    embed, _ = _widget(ctx, public_uuid, origin)
    return to_history(ctx.chats.embed_history(embed.id, _check_session_id(session_id)))


class ResetWidgetSession(PublicCommand, frozen=True, kw_only=True):
    public_uuid: str
    origin: str | None
    session_id: str


def reset_widget_session(ctx: Context, cmd: ResetWidgetSession) -> None:
    """Clear a widget session's history (recorded as the embed's creator, like its chats)."""
    embed, principal = _widget(ctx, cmd.public_uuid, cmd.origin)
    reset = HistoryReset.record(principal.actor(cmd.correlation_id), embed.workspace_id, principal.user_id, None,
                                _check_session_id(cmd.session_id), embed.id)
    ctx.save(reset, project=[ctx.chats])


def embed_chats(ctx: Context, principal: Principal, public_uuid: str, session_id: str | None) -> list[EmbedChat]:
    """The embed's chats (or one session's), newest first, at most 1000."""
    embed = get_embed(ctx, principal, public_uuid)
    return ctx.chats.embed_chats(embed.id, session_id, 1000)
