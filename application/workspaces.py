"""Workspaces: create, update, delete, membership, embedding documents, pinning; queries."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import msgspec

from application.access import check_admin_or_manager, check_can_manage_content, check_scope
from application.ledger import Context
from domain.embeds import embed_uuid
from domain.errors import NotFound, PermissionDenied
from domain.principal import Principal, Role, Scope
from domain.workspaces import (
    WORKSPACE_DIRECTORY_ID, Workspace, WorkspaceDirectory, WorkspaceDoc, check_name, slugify, workspace_uuid,
)
from projections.vectors import chunk_hash, missing_embeddings, put_embeddings

MAX_CHUNK_TOKENS = 200  # cl100k tokens; all-MiniLM-L6-v2 reads at most 256 word pieces
DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP = 1000, 20  # upstream's text splitter defaults


class WorkspaceRow(msgspec.Struct, frozen=True):
    id: int
    aggregate_id: str
    name: str
    slug: str
    settings: dict[str, Any]
    created_at: str
    updated_at: str


def _row(r: dict[str, Any] | None) -> WorkspaceRow | None:
    if r is None:
        return None
    return WorkspaceRow(id=r["id"], aggregate_id=r["aggregate_id"], name=r["name"], slug=r["slug"],
                        settings=json.loads(r["settings"]), created_at=r["created_at"], updated_at=r["updated_at"])


_SELECT = "SELECT id, aggregate_id, name, slug, settings, created_at, updated_at FROM workspaces"


def get_workspace(ctx: Context, slug: str) -> WorkspaceRow | None:
    with ctx.library.view.read() as tx:
        return _row(tx.one(_SELECT + " WHERE slug = ?", (slug,)))


def get_workspace_by_id(ctx: Context, workspace_id: int) -> WorkspaceRow | None:
    with ctx.library.view.read() as tx:
        return _row(tx.one(_SELECT + " WHERE id = ?", (workspace_id,)))


def _restricted(ctx: Context, principal: Principal) -> bool:
    """`default` users see only workspaces they belong to (multi-user mode)."""
    return principal.role is Role.DEFAULT and ctx.accounts.is_multi_user()


def list_workspaces(ctx: Context, principal: Principal) -> list[WorkspaceRow]:
    check_scope(principal, Scope.READ)
    with ctx.library.view.read() as tx:
        if _restricted(ctx, principal):
            rows = tx.all(_SELECT + " WHERE id IN (SELECT workspace_id FROM workspace_members WHERE user_id = ?)"
                          " ORDER BY id", (principal.user_id,))
        else:
            rows = tx.all(_SELECT + " ORDER BY id")
    return [_row(r) for r in rows]  # type: ignore[misc]


def visible_workspace(ctx: Context, principal: Principal, slug: str, scope: Scope = Scope.READ) -> WorkspaceRow:
    """The workspace if it exists and the caller may see it; otherwise NotFound (not 403, so
    a default user cannot probe other workspaces' slugs). `scope`: what the key needs (chat
    routes: `chat`)."""
    check_scope(principal, scope)
    row = get_workspace(ctx, slug)
    if row is None or (_restricted(ctx, principal) and principal.user_id not in member_ids(ctx, row.id)):
        raise NotFound(f"Workspace {slug} is not a valid workspace.")
    return row


def member_ids(ctx: Context, workspace_id: int) -> set[int]:
    with ctx.library.view.read() as tx:
        return {r["user_id"] for r in tx.all("SELECT user_id FROM workspace_members WHERE workspace_id = ?",
                                             (workspace_id,))}


def workspace_documents(ctx: Context, workspace_id: int) -> list[dict[str, Any]]:
    with ctx.library.view.read() as tx:
        return tx.all(
            "SELECT w.id, w.doc_id, w.docpath, w.document_id, w.pinned, w.chunks, w.created_at, w.updated_at,"
            " d.filename, d.metadata FROM workspace_documents w LEFT JOIN documents d"
            " ON d.document_id = w.document_id WHERE w.workspace_id = ? ORDER BY w.id", (workspace_id,))


# commands -----------------------------------------------------------------------------------
class CreateWorkspace(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    name: Any
    settings: dict[str, Any] = {}


def _directory(ctx: Context, actor: Any) -> WorkspaceDirectory:
    return ctx.ledger.find(WORKSPACE_DIRECTORY_ID) or WorkspaceDirectory.open(actor)


def create_workspace(ctx: Context, cmd: CreateWorkspace) -> WorkspaceRow:
    check_can_manage_content(cmd.principal)
    name = check_name(cmd.name)
    actor = cmd.principal.actor(cmd.correlation_id)

    def attempt() -> WorkspaceRow:
        directory = _directory(ctx, actor)
        slug = slugify(name)
        if directory.id_of(slug) is not None:  # upstream adds an 8-digit suffix on collision
            slug = f"{slug}-{secrets.randbelow(10**8):08d}"
        workspace_id = directory.next_id()
        workspace = Workspace.create(actor, workspace_id, name, slug, cmd.settings)
        directory.take_slug(actor, workspace_id, slug)
        ctx.save(directory, workspace, project=[ctx.library])
        return get_workspace(ctx, slug)  # type: ignore[return-value]

    return ctx.retrying(attempt)


def _load(ctx: Context, slug: str) -> Workspace:
    row = get_workspace(ctx, slug)
    workspace = ctx.ledger.find(workspace_uuid(row.id)) if row else None
    if workspace is None or workspace.deleted:
        raise NotFound(f"Workspace {slug} is not a valid workspace.")
    return workspace


class UpdateWorkspace(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    slug: str
    changes: dict[str, Any]


def update_workspace(ctx: Context, cmd: UpdateWorkspace) -> tuple[WorkspaceRow, bool]:
    check_can_manage_content(cmd.principal)

    def attempt() -> tuple[WorkspaceRow, bool]:
        workspace = _load(ctx, cmd.slug)
        changed = workspace.update(cmd.principal.actor(cmd.correlation_id), cmd.changes)
        if changed:
            ctx.save(workspace, project=[ctx.library])
        return get_workspace(ctx, cmd.slug), changed  # type: ignore[return-value]

    return ctx.retrying(attempt)


class DeleteWorkspace(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    slug: str


def delete_workspace(ctx: Context, cmd: DeleteWorkspace) -> None:
    """Deletes the workspace, its document links, its vectors and its embeds (upstream cascades)."""
    check_can_manage_content(cmd.principal)
    actor = cmd.principal.actor(cmd.correlation_id)

    def attempt() -> None:
        workspace = _load(ctx, cmd.slug)
        directory = _directory(ctx, actor)
        workspace.delete(actor)
        directory.free_slug(actor, cmd.slug)
        embeds = [ctx.ledger.repository.get(embed_uuid(r["uuid"])) for r in _embeds_of(ctx, workspace.workspace_id)]
        for embed in embeds:
            embed.delete(actor)
        ctx.save(directory, workspace, *embeds, project=[ctx.library, ctx.vectors])

    ctx.retrying(attempt)


def _embeds_of(ctx: Context, workspace_id: int) -> list[dict[str, Any]]:
    with ctx.library.view.read() as tx:
        return tx.all("SELECT uuid FROM embeds WHERE workspace_id = ?", (workspace_id,))


class SetMembers(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    workspace_id: int | None = None
    slug: str | None = None
    user_ids: list[int]
    replace: bool


def set_members(ctx: Context, cmd: SetMembers) -> list[dict[str, Any]]:
    """Add (or with `replace`, set) the members; unknown or deleted user ids are refused."""
    check_admin_or_manager(cmd.principal)
    row = get_workspace(ctx, cmd.slug) if cmd.slug is not None else get_workspace_by_id(ctx, cmd.workspace_id or 0)
    if row is None:
        raise NotFound("Workspace not found")
    valid = {u for u in cmd.user_ids if (user := ctx.accounts.user(u)) is not None and not user.deleted}
    if cmd.user_ids and not valid:
        raise NotFound("No valid user IDs provided.")

    def attempt() -> None:
        workspace = _load(ctx, row.slug)
        workspace.set_members(cmd.principal.actor(cmd.correlation_id), valid, cmd.replace)
        if workspace.pending_events:
            ctx.save(workspace, project=[ctx.library])

    ctx.retrying(attempt)
    return members(ctx, row.id)


def members(ctx: Context, workspace_id: int) -> list[dict[str, Any]]:
    ids = sorted(member_ids(ctx, workspace_id))
    out = []
    for user_id in ids:
        user = ctx.accounts.user(user_id)
        if user and not user.deleted:
            out.append({"userId": user.id, "username": user.username, "role": user.role,
                        "lastUpdatedAt": user.updated_at})
    return out


# embedding ----------------------------------------------------------------------------------
def chunk_settings(ctx: Context) -> tuple[int, int]:
    """Chunk size and overlap in tokens: the system settings (upstream's defaults), capped to
    what the embedding model reads."""
    def number(label: str, default: int) -> int:
        try:
            return int(ctx.accounts.setting(label) or default)
        except ValueError:
            return default

    size = max(16, min(number("text_splitter_chunk_size", DEFAULT_CHUNK_SIZE), MAX_CHUNK_TOKENS))
    overlap = max(0, min(number("text_splitter_chunk_overlap", DEFAULT_CHUNK_OVERLAP), size // 4))
    return size, overlap


class EmbedFailure(msgspec.Struct, frozen=True):
    docpath: str
    error: str


def _document_by_path(ctx: Context, docpath: str) -> dict[str, Any] | None:
    if not isinstance(docpath, str) or docpath.count("/") != 1:
        return None
    folder, filename = docpath.split("/")
    with ctx.library.view.read() as tx:
        return tx.one("SELECT document_id, text_hash FROM documents WHERE folder = ? AND filename = ?",
                      (folder, filename))


def prepare_embeddings(ctx: Context, docpaths: list[str]) -> tuple[list[WorkspaceDoc], list[EmbedFailure]]:
    """Chunk each document and make sure every chunk's vector is in the cache (computing only
    the ones it lacks, in batches). Nothing is recorded here; failures are returned."""
    size, overlap = chunk_settings(ctx)
    content = ctx.content
    ready: list[WorkspaceDoc] = []
    failures: list[EmbedFailure] = []
    for docpath in dict.fromkeys(docpaths):
        doc = _document_by_path(ctx, docpath)
        if doc is None:
            failures.append(EmbedFailure(str(docpath), "Document not found"))
            continue
        try:
            text = content.blobs.get(doc["text_hash"]).decode()
            chunks = content.tokenizer.chunk(text, size, overlap)
            if not chunks:
                raise ValueError("the document has no text to embed")
            ensure_vectors(ctx, chunks)
        except Exception as e:  # noqa: BLE001 - reported to the caller, never swallowed
            failures.append(EmbedFailure(docpath, f"Embedding failed: {e}"))
            continue
        ready.append(WorkspaceDoc(doc_id=str(uuid.uuid4()), docpath=docpath, document_id=doc["document_id"],
                                  text_hash=doc["text_hash"], chunk_size=size, chunk_overlap=overlap,
                                  chunks=len(chunks)))
    return ready, failures


def ensure_vectors(ctx: Context, texts: list[str]) -> None:
    embedder = ctx.content.embedder
    by_hash = {chunk_hash(t): t for t in texts}
    missing = missing_embeddings(ctx.vectors.view, embedder.model_name, list(by_hash))
    for start in range(0, len(missing), 256):
        batch = missing[start:start + 256]
        vectors = embedder.embed([by_hash[h] for h in batch])
        put_embeddings(ctx.vectors.view, embedder.model_name, list(zip(batch, vectors)))


class UpdateEmbeddings(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    slug: str
    adds: list[str] = []
    deletes: list[str] = []


def update_embeddings(ctx: Context, cmd: UpdateEmbeddings) -> tuple[WorkspaceRow, list[EmbedFailure]]:
    check_can_manage_content(cmd.principal)
    _load(ctx, cmd.slug)
    ready, failures = prepare_embeddings(ctx, cmd.adds)
    actor = cmd.principal.actor(cmd.correlation_id)

    def attempt() -> WorkspaceRow:
        workspace = _load(ctx, cmd.slug)
        workspace.remove_documents(actor, cmd.deletes)
        workspace.embed(actor, ready)
        if workspace.pending_events:
            ctx.save(workspace, project=[ctx.library, ctx.vectors])
        return get_workspace(ctx, cmd.slug)  # type: ignore[return-value]

    return ctx.retrying(attempt), failures


class UpdatePin(msgspec.Struct, frozen=True, kw_only=True):
    principal: Principal
    correlation_id: str
    slug: str
    docpath: str
    pinned: bool


def update_pin(ctx: Context, cmd: UpdatePin) -> None:
    check_can_manage_content(cmd.principal)

    def attempt() -> None:
        workspace = _load(ctx, cmd.slug)
        workspace.pin(cmd.principal.actor(cmd.correlation_id), cmd.docpath, cmd.pinned)
        if workspace.pending_events:
            ctx.save(workspace, project=[ctx.library])

    ctx.retrying(attempt)


def require_member_or_manager(ctx: Context, principal: Principal, row: WorkspaceRow) -> None:
    if _restricted(ctx, principal) and principal.user_id not in member_ids(ctx, row.id):
        raise PermissionDenied()

