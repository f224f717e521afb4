"""Threads: create, rename, delete, list; each belongs to one user of one workspace.
Commands are frozen Structs with one handler each; queries read the chats view."""

from __future__ import annotations

import uuid

from application.ids import take_id
from application.ledger import Command, Context
from application.rows import ThreadRow
from application.access import visible_workspace
from application.rows import WorkspaceRow
from domain.errors import Conflict, NotFound, PermissionDenied
from domain.principal import Principal, Scope
from domain.threads import Thread, ThreadSlug, check_thread_slug, thread_slug_uuid, thread_uuid


def _own_scope(principal: Principal) -> Scope:
    """A key reads its own threads with `read`, or with `chat` (the threads it chats in)."""
    return Scope.CHAT if principal.has_scope(Scope.CHAT) else Scope.READ


def get_thread(ctx: Context, workspace: WorkspaceRow, slug: str) -> ThreadRow | None:
    return ctx.chats.thread(workspace.id, slug)


def owned_thread(ctx: Context, principal: Principal, workspace: WorkspaceRow, slug: str) -> ThreadRow:
    """The thread if it is the caller's (or the caller is an admin); else not found."""
    thread = get_thread(ctx, workspace, slug)
    if thread is None or (thread.user_id != principal.user_id and not principal.is_admin):
        raise NotFound("Thread not found")
    return thread


def list_threads(ctx: Context, principal: Principal, workspace_slug: str) -> list[ThreadRow]:
    workspace = visible_workspace(ctx, principal, workspace_slug, _own_scope(principal))
    return ctx.chats.threads_of(workspace.id, principal.user_id)


class CreateThread(Command, frozen=True, kw_only=True):
    """A new thread in the workspace, for the caller or (admins only) for `user_id`; `slug`
    defaults to a random one and must be free in the workspace."""

    workspace_slug: str
    name: str | None = None
    slug: str | None = None
    user_id: int | None = None


def create_thread(ctx: Context, cmd: CreateThread) -> ThreadRow:
    principal = cmd.principal
    workspace = visible_workspace(ctx, principal, cmd.workspace_slug, Scope.CHAT)
    owner = principal.user_id
    if cmd.user_id is not None and cmd.user_id != principal.user_id:
        if not principal.is_admin:
            raise PermissionDenied("Only admins may create threads for another user.")
        user = ctx.accounts.user(cmd.user_id)
        if user is None or user.deleted:
            raise NotFound("User not found")
        owner = user.id
    name = "Thread" if cmd.name is None else cmd.name
    slug = check_thread_slug(cmd.slug or str(uuid.uuid4()))
    taken = f"This workspace already has a thread with the slug {slug!r}; choose another."
    actor = cmd.actor()

    def attempt() -> ThreadRow:
        # A taken slug is refused before an id is taken: a refused command stores nothing.
        if ctx.ledger.find(thread_slug_uuid(slug, workspace.id)) is not None or get_thread(ctx, workspace, slug):
            raise Conflict(taken)
        thread_id = take_id(ctx, "threads", actor)
        thread = Thread.create(actor, thread_id, workspace.id, owner, name, slug)
        claim = ThreadSlug.claim(actor, slug, thread_id, workspace.id)
        ctx.save(thread, claim, project=[ctx.chats])
        return get_thread(ctx, workspace, slug)  # type: ignore[return-value]

    return ctx.retrying(attempt)


class UpdateThread(Command, frozen=True, kw_only=True):
    """Rename one of the caller's threads (an admin's: anyone's)."""

    workspace_slug: str
    slug: str
    name: str


def update_thread(ctx: Context, cmd: UpdateThread) -> ThreadRow:
    workspace = visible_workspace(ctx, cmd.principal, cmd.workspace_slug, Scope.WRITE)
    row = owned_thread(ctx, cmd.principal, workspace, cmd.slug)

    def attempt() -> ThreadRow:
        thread: Thread = ctx.ledger.repository.get(thread_uuid(row.id))
        thread.rename(cmd.actor(), cmd.name)
        if thread.pending_events:
            ctx.save(thread, project=[ctx.chats])
        return get_thread(ctx, workspace, cmd.slug)  # type: ignore[return-value]

    return ctx.retrying(attempt)


class DeleteThread(Command, frozen=True, kw_only=True):
    workspace_slug: str
    slug: str


def delete_thread(ctx: Context, cmd: DeleteThread) -> None:
    """Delete the thread and its chats from the views (the events stay). A thread that is not
    the caller's is not found, like an absent one: never a success that deleted nothing."""
    workspace = visible_workspace(ctx, cmd.principal, cmd.workspace_slug, Scope.WRITE)
    row = owned_thread(ctx, cmd.principal, workspace, cmd.slug)

    def attempt() -> None:
        thread: Thread = ctx.ledger.repository.get(thread_uuid(row.id))
        thread.delete(cmd.actor())
        if thread.pending_events:
            ctx.save(thread, project=[ctx.chats])

    ctx.retrying(attempt)
