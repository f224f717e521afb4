"""Embed widgets: admins create, list, change and delete them (the chat routes come later)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec

from application.access import check_admin
from application.ids import take_id
from application.ledger import Context
from application.workspaces import get_workspace, get_workspace_by_id
from domain.embeds import Embed, embed_uuid, is_public_id
from datetime import datetime, timedelta, timezone

from domain.errors import DomainError, InvalidInput, NotFound
from domain.principal import Principal, Role
from domain.timefmt import iso
from projections.chats import full_response


class EmbedRow(msgspec.Struct, frozen=True):
    id: int
    uuid: str
    workspace_id: int
    workspace_name: str | None
    workspace_slug: str | None
    settings: dict[str, Any]
    created_by: int
    created_at: str
    chat_count: int = 0


def _rows(ctx: Context, where: str = "", params: tuple = ()) -> list[EmbedRow]:
    with ctx.library.view.read() as tx:
        rows = tx.all(
            "SELECT e.id, e.uuid, e.workspace_id, w.name AS workspace_name, w.slug AS workspace_slug, e.settings,"
            f" e.created_by, e.created_at FROM embeds e LEFT JOIN workspaces w ON w.id = e.workspace_id {where}"
            " ORDER BY e.id", params)
    counts: dict[int, int] = {}
    if rows and ctx.chats is not None:
        with ctx.chats.view.read() as tx:
            counts = {r["embed_id"]: r["n"] for r in tx.all(
                "SELECT embed_id, COUNT(*) AS n FROM chats WHERE embed_id IS NOT NULL GROUP BY embed_id")}
    return [EmbedRow(**{**r, "settings": json.loads(r["settings"])}, chat_count=counts.get(r["id"], 0)) for r in rows]


def list_embeds(ctx: Context, principal: Principal) -> list[EmbedRow]:
    check_admin(principal)
    return _rows(ctx)


def get_embed(ctx: Context, principal: Principal, public_uuid: str) -> EmbedRow:
    check_admin(principal)
    rows = _rows(ctx, "WHERE e.uuid = ?", (public_uuid,))
    if not rows:
        raise NotFound("Embed not found")
    return rows[0]


def create_embed(ctx: Context, principal: Principal, correlation_id: str, body: dict[str, Any]) -> EmbedRow:
    check_admin(principal)
    slug = body.get("workspace_slug")
    if not isinstance(slug, str) or not slug:
        raise InvalidInput("Workspace slug is required")
    workspace = get_workspace(ctx, slug)
    if workspace is None:
        raise NotFound("Workspace not found")
    actor = principal.actor(correlation_id)
    public_uuid = str(uuid.uuid4())

    def attempt() -> EmbedRow:
        seq, embed_id = take_id(ctx, "embeds", actor)
        embed = Embed.create(actor, embed_id, public_uuid, workspace.id, body)
        ctx.save(seq, embed, project=[ctx.library])
        return _rows(ctx, "WHERE e.uuid = ?", (public_uuid,))[0]

    return ctx.retrying(attempt)


def update_embed(ctx: Context, principal: Principal, correlation_id: str, public_uuid: str, body: dict[str, Any]) -> None:
    check_admin(principal)
    workspace_id = body.get("workspace_id")
    if workspace_id is not None and (not is_public_id(workspace_id) or get_workspace_by_id(ctx, workspace_id) is None):
        raise NotFound("Workspace not found")

    def attempt() -> None:
        embed: Embed | None = ctx.ledger.find(embed_uuid(public_uuid))
        if embed is None or embed.deleted:
            raise NotFound("Embed not found")
        if embed.update(principal.actor(correlation_id), body, workspace_id):
            ctx.save(embed, project=[ctx.library])

    ctx.retrying(attempt)


def delete_embed(ctx: Context, principal: Principal, correlation_id: str, public_uuid: str) -> None:
    check_admin(principal)

    def attempt() -> None:
        embed: Embed | None = ctx.ledger.find(embed_uuid(public_uuid))
        if embed is None or not embed.delete(principal.actor(correlation_id)):
            raise NotFound("Embed not found")
        ctx.save(embed, project=[ctx.library])

    ctx.retrying(attempt)


# the public widget ---------------------------------------------------------------------------
class WidgetError(DomainError):
    status = 403


def _widget(ctx: Context, public_uuid: str, origin: str | None) -> tuple[EmbedRow, Principal]:
    """The enabled embed and the user its chats are recorded for (its creator: there is no
    anonymous user here); the caller's Origin must be on the allowlist when one is set."""
    rows = _rows(ctx, "WHERE e.uuid = ?", (public_uuid,))
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


def _check_session_id(session_id: Any) -> str:
    if not isinstance(session_id, str) or not 1 <= len(session_id) <= 255:
        raise InvalidInput("sessionId is required")
    return session_id


def widget_chat_request(ctx: Context, public_uuid: str, origin: str | None, correlation_id: str,
                        body: dict[str, Any]) -> Any:
    from application.chat import ChatRequest

    embed, principal = _widget(ctx, public_uuid, origin)
    session_id = _check_session_id(body.get("sessionId"))
    limits = embed.settings
    with ctx.chats.view.read() as tx:
        in_session = tx.scalar("SELECT COUNT(*) FROM chats WHERE embed_id = ? AND session_key = ?", (embed.id, session_id))
        today = tx.scalar("SELECT COUNT(*) FROM chats WHERE embed_id = ? AND created_at >= ?",
                          (embed.id, iso(datetime.now(timezone.utc) - timedelta(days=1))))
    if limits.get("max_chats_per_session") and in_session >= limits["max_chats_per_session"]:
        raise WidgetError("This session has reached its chat limit.")
    if limits.get("max_chats_per_day") and today >= limits["max_chats_per_day"]:
        raise WidgetError("This embed has reached its daily chat limit.")
    temperature = body.get("temperature") if limits.get("allow_temperature_override") else None
    prompt = body.get("prompt") if limits.get("allow_prompt_override") else None
    return ChatRequest(principal=principal, correlation_id=correlation_id, slug=embed.workspace_slug or "",
                       message=body.get("message"), mode=limits.get("chat_mode", "query"), session_id=session_id,
                       temperature=temperature if isinstance(temperature, (int, float)) else None,
                       system_prompt=prompt if isinstance(prompt, str) else None, embed_id=embed.id)


def widget_history(ctx: Context, public_uuid: str, origin: str | None, session_id: str) -> list[dict[str, Any]]:
    from application.history import to_history

    embed, _ = _widget(ctx, public_uuid, origin)
    with ctx.chats.view.read() as tx:
        rows = tx.all("SELECT id, prompt, reply, response, feedback, created_at FROM chats WHERE embed_id = ? AND"
                      " session_key = ? AND include = 1 ORDER BY position", (embed.id, _check_session_id(session_id)))
    return to_history(rows)


def widget_reset(ctx: Context, public_uuid: str, origin: str | None, session_id: str, correlation_id: str) -> None:
    from domain.chats import HistoryReset

    embed, principal = _widget(ctx, public_uuid, origin)
    reset = HistoryReset.record(principal.actor(correlation_id), embed.workspace_id, principal.user_id, None,
                                _check_session_id(session_id), embed.id)
    ctx.save(reset, project=[ctx.chats])


def embed_chats(ctx: Context, principal: Principal, public_uuid: str, session_id: str | None) -> list[dict[str, Any]]:
    """Upstream's embed_chats rows (without the caller's IP and host, which upstream leaks)."""
    embed = get_embed(ctx, principal, public_uuid)
    sql = ("SELECT id, prompt, reply, response, session_key, include, created_at FROM chats WHERE embed_id = ?"
           + (" AND session_key = ?" if session_id is not None else "") + " ORDER BY position DESC LIMIT 1000")
    params = (embed.id, session_id) if session_id is not None else (embed.id,)
    with ctx.chats.view.read() as tx:
        rows = tx.all(sql, params)
    return [{"id": r["id"], "prompt": r["prompt"], "response": full_response(r), "session_id": r["session_key"],
             "include": bool(r["include"]), "embed_id": embed.id, "createdAt": r["created_at"]} for r in rows]
