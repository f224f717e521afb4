"""Threads: create, rename, delete, list; each belongs to one user of one workspace."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from application.access import check_scope
from application.ids import take_id
from application.ledger import Context
from application.workspaces import WorkspaceRow, visible_workspace
from domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from domain.principal import Principal, Scope
from domain.threads import Thread, ThreadSlug, check_thread_slug, thread_uuid


class ThreadRow(msgspec.Struct, frozen=True):
    id: int
    workspace_id: int
    user_id: int
    name: str
    slug: str
    created_at: str
    updated_at: str


def get_thread(ctx: Context, workspace: WorkspaceRow, slug: str) -> ThreadRow | None:
    with ctx.chats.view.read() as tx:
        row = tx.one("SELECT id, workspace_id, user_id, name, slug, created_at, updated_at FROM threads"
                     " WHERE slug = ? AND workspace_id = ?", (slug, workspace.id))
    return msgspec.convert(row, ThreadRow) if row else None


def owned_thread(ctx: Context, principal: Principal, workspace: WorkspaceRow, slug: str) -> ThreadRow:
    """The thread if it is the caller's (or the caller is an admin); else not found."""
    thread = get_thread(ctx, workspace, slug)
    if thread is None or (thread.user_id != principal.user_id and not principal.is_admin):
        raise NotFound("Thread not found")
    return thread


def list_threads(ctx: Context, principal: Principal, workspace_slug: str) -> list[ThreadRow]:
    workspace = visible_workspace(ctx, principal, workspace_slug)
    with ctx.chats.view.read() as tx:
        rows = tx.all("SELECT id, workspace_id, user_id, name, slug, created_at, updated_at FROM threads"
                      " WHERE workspace_id = ? AND user_id = ? ORDER BY id", (workspace.id, principal.user_id))
    return [msgspec.convert(r, ThreadRow) for r in rows]


def create_thread(ctx: Context, principal: Principal, correlation_id: str, workspace_slug: str, *,
                  name: Any = None, slug: Any = None, user_id: Any = None) -> ThreadRow:
    check_scope(principal, Scope.CHAT)
    workspace = visible_workspace(ctx, principal, workspace_slug)
    owner = principal.user_id
    if user_id is not None and user_id != principal.user_id:
        if isinstance(user_id, bool) or not isinstance(user_id, int):
            raise InvalidInput("userId must be an integer")
        if not principal.is_admin:
            raise PermissionDenied("Only admins may create threads for another user.")
        user = ctx.accounts.user(user_id)
        if user is None or user.deleted:
            raise NotFound("User not found")
        owner = user.id
    name = "Thread" if name is None else name
    slug = check_thread_slug(slug if isinstance(slug, str) and slug else str(uuid.uuid4()))
    actor = principal.actor(correlation_id)

    def attempt() -> ThreadRow:
        seq, thread_id = take_id(ctx, "threads", actor)
        thread = Thread.create(actor, thread_id, workspace.id, owner, name, slug)
        claim = ThreadSlug.claim(actor, slug, thread_id)
        if ctx.ledger.find(claim.id) is not None:
            raise Conflict(f"A thread with slug {slug!r} already exists.")
        ctx.save(seq, thread, claim, project=[ctx.chats])
        return get_thread(ctx, workspace, slug)  # type: ignore[return-value]

    return ctx.retrying(attempt)


def rename_thread(ctx: Context, principal: Principal, correlation_id: str, workspace_slug: str, slug: str,
                  name: Any) -> ThreadRow:
    workspace = visible_workspace(ctx, principal, workspace_slug)
    row = owned_thread(ctx, principal, workspace, slug)

    def attempt() -> ThreadRow:
        thread: Thread = ctx.ledger.repository.get(thread_uuid(row.id))
        thread.rename(principal.actor(correlation_id), name)
        if thread.pending_events:
            ctx.save(thread, project=[ctx.chats])
        return get_thread(ctx, workspace, slug)  # type: ignore[return-value]

    return ctx.retrying(attempt)


def delete_thread(ctx: Context, principal: Principal, correlation_id: str, workspace_slug: str, slug: str) -> bool:
    """Delete the thread and its chats from the views (the events stay). False if there was none."""
    workspace = visible_workspace(ctx, principal, workspace_slug)
    try:
        row = owned_thread(ctx, principal, workspace, slug)
    except NotFound:
        return False

    def attempt() -> None:
        thread: Thread = ctx.ledger.repository.get(thread_uuid(row.id))
        thread.delete(principal.actor(correlation_id))
        if thread.pending_events:
            ctx.save(thread, project=[ctx.chats])

    ctx.retrying(attempt)
    return True
