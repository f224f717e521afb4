"""Embed widgets: admins create, list, change and delete them (the chat routes come later)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec

from application.access import check_admin
from application.apikeys import take_id
from application.ledger import Context
from application.workspaces import get_workspace, get_workspace_by_id
from domain.embeds import Embed, embed_uuid
from domain.errors import InvalidInput, NotFound
from domain.principal import Principal


class EmbedRow(msgspec.Struct, frozen=True):
    id: int
    uuid: str
    workspace_id: int
    workspace_name: str | None
    workspace_slug: str | None
    settings: dict[str, Any]
    created_by: int
    created_at: str


def _rows(ctx: Context, where: str = "", params: tuple = ()) -> list[EmbedRow]:
    with ctx.library.view.read() as tx:
        rows = tx.all(
            "SELECT e.id, e.uuid, e.workspace_id, w.name AS workspace_name, w.slug AS workspace_slug, e.settings,"
            f" e.created_by, e.created_at FROM embeds e LEFT JOIN workspaces w ON w.id = e.workspace_id {where}"
            " ORDER BY e.id", params)
    return [EmbedRow(**{**r, "settings": json.loads(r["settings"])}) for r in rows]


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
    if workspace_id is not None and (not isinstance(workspace_id, int) or get_workspace_by_id(ctx, workspace_id) is None):
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
