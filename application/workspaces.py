"""Workspaces: create, update, delete, membership, embedding documents, pinning; queries."""

from __future__ import annotations

import secrets
import uuid

import msgspec

from application.access import check_admin_or_manager, check_can_manage_content, check_scope, restricted
from application.ledger import Command, Context
from application.rows import SettingValue, UserRow, WorkspaceDocumentRow, WorkspaceRow, ThreadRow
from domain.embeds import Embed, embed_uuid
from domain.errors import NotFound
from domain.principal import Actor, Principal, Scope
from domain.workspaces import (
    WORKSPACE_DIRECTORY_ID, Workspace, WorkspaceDirectory, WorkspaceDoc, check_name, slugify, workspace_uuid,
)
from domain.hashing import chunk_hash

MAX_CHUNK_TOKENS = 200  # cl100k tokens; all-MiniLM-L6-v2 reads at most 256 word pieces
DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP = 1000, 20  # upstream's text splitter defaults
Settings = dict[str, SettingValue]


def get_workspace(ctx: Context, slug: str) -> WorkspaceRow | None:
    return ctx.library.workspace(slug)


def get_workspace_by_id(ctx: Context, workspace_id: int) -> WorkspaceRow | None:
    return ctx.library.workspace_by_id(workspace_id)


def list_workspaces(ctx: Context, principal: Principal) -> list[WorkspaceRow]:
    check_scope(principal, Scope.READ)
    return ctx.library.workspaces(member=principal.user_id if restricted(ctx, principal) else None)


def documents_of(ctx: Context, workspace_id: int) -> list[WorkspaceDocumentRow]:
    """The documents embedded in the workspace (upstream's workspace_documents rows)."""
    return ctx.library.workspace_documents(workspace_id)


def threads_of(ctx: Context, principal: Principal, workspace_id: int) -> list[ThreadRow]:
    """The caller's threads in the workspace (what upstream's workspace routes list)."""
    return ctx.chats.threads_of(workspace_id, principal.user_id)


# commands -----------------------------------------------------------------------------------
class CreateWorkspace(Command, frozen=True, kw_only=True):
    name: str | None
    settings: Settings = {}


def _directory(ctx: Context, actor: Actor) -> WorkspaceDirectory:
    return ctx.ledger.find(WORKSPACE_DIRECTORY_ID) or WorkspaceDirectory.open(actor)


def create_workspace(ctx: Context, cmd: CreateWorkspace) -> WorkspaceRow:
    check_can_manage_content(cmd.principal)
    name = check_name(cmd.name)
    actor = cmd.actor()

    def attempt() -> WorkspaceRow:
        directory = _directory(ctx, actor)
        slug = slugify(name)
        if directory.id_of(slug) is not None:  # upstream: slugify(`${name}-${8 random digits}`)
            slug = slugify(f"{name}-{10_000_000 + secrets.randbelow(90_000_000)}")
        workspace_id = directory.next_id()
        workspace = Workspace.create(actor, workspace_id, name, slug, dict(cmd.settings))
        directory.take_slug(actor, workspace_id, slug)
        ctx.save(directory, workspace, project=[ctx.library])
        return _reread(ctx, slug)

    return ctx.retrying(attempt)


def _reread(ctx: Context, slug: str) -> WorkspaceRow:
    row = get_workspace(ctx, slug)
    if row is None:  # deleted by a concurrent request since
        raise NotFound(f"Workspace {slug} is not a valid workspace.")
    return row


def _load(ctx: Context, slug: str) -> Workspace:
    row = get_workspace(ctx, slug)
    workspace = ctx.ledger.find(workspace_uuid(row.id)) if row else None
    if workspace is None or workspace.deleted:
        raise NotFound(f"Workspace {slug} is not a valid workspace.")
    return workspace


class UpdateWorkspace(Command, frozen=True, kw_only=True):
    slug: str
    changes: Settings


def update_workspace(ctx: Context, cmd: UpdateWorkspace) -> tuple[WorkspaceRow, bool]:
    check_can_manage_content(cmd.principal)

    def attempt() -> tuple[WorkspaceRow, bool]:
        workspace = _load(ctx, cmd.slug)
        changed = workspace.update(cmd.actor(), dict(cmd.changes))
        if changed:
            ctx.save(workspace, project=[ctx.library])
        return _reread(ctx, cmd.slug), changed

    return ctx.retrying(attempt)


class DeleteWorkspace(Command, frozen=True, kw_only=True):
    slug: str


def delete_workspace(ctx: Context, cmd: DeleteWorkspace) -> None:
    """Deletes the workspace, its document links, its vectors and its embeds (upstream cascades)."""
    check_can_manage_content(cmd.principal)
    actor = cmd.actor()

    def attempt() -> None:
        workspace = _load(ctx, cmd.slug)
        directory = _directory(ctx, actor)
        workspace.delete(actor)
        directory.free_slug(actor, cmd.slug)
        embeds: list[Embed] = [ctx.ledger.repository.get(embed_uuid(u))
                               for u in ctx.library.embed_uuids(workspace.workspace_id)]
        for embed in embeds:
            embed.delete(actor)
        ctx.save(directory, workspace, *embeds, project=[ctx.library, ctx.vectors])

    ctx.retrying(attempt)


class SetMembers(Command, frozen=True, kw_only=True):
    workspace_id: int | None = None
    slug: str | None = None
    user_ids: list[int]
    replace: bool


def set_members(ctx: Context, cmd: SetMembers) -> list[UserRow]:
    """Add (or with `replace`, set) the members; unknown or deleted user ids are refused."""
    check_admin_or_manager(cmd.principal)
    row = get_workspace(ctx, cmd.slug) if cmd.slug is not None else get_workspace_by_id(ctx, cmd.workspace_id or 0)
    if row is None:
        raise NotFound("Workspace not found")
    known = ctx.accounts.users(cmd.user_ids)
    valid = {u for u in cmd.user_ids if (user := known.get(u)) is not None and not user.deleted}
    if cmd.user_ids and not valid:
        raise NotFound("No valid user IDs provided.")

    def attempt() -> None:
        workspace = _load(ctx, row.slug)
        workspace.set_members(cmd.actor(), valid, cmd.replace)
        if workspace.pending_events:
            ctx.save(workspace, project=[ctx.library])

    ctx.retrying(attempt)
    return members(ctx, row.id)


def members(ctx: Context, workspace_id: int) -> list[UserRow]:
    """The workspace's members that are not deleted, by user id."""
    users = ctx.accounts.users(ctx.library.member_ids(workspace_id))
    return [users[u] for u in sorted(users) if not users[u].deleted]


def list_members(ctx: Context, principal: Principal, workspace_id: int) -> list[UserRow]:
    check_admin_or_manager(principal)
    if get_workspace_by_id(ctx, workspace_id) is None:
        raise NotFound("Workspace not found")
    return members(ctx, workspace_id)


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


def _chunk_and_embed(ctx: Context, docpaths: list[str]) -> tuple[list[WorkspaceDoc], list[EmbedFailure]]:
    """Chunk each document and make sure every chunk's vector is in the embedding cache
    (computing only the ones it lacks, in batches). No event is recorded here; failures are
    returned for the caller to report."""
    size, overlap = chunk_settings(ctx)
    content = ctx.content
    ready: list[WorkspaceDoc] = []
    failures: list[EmbedFailure] = []
    for docpath in dict.fromkeys(docpaths):
        folder, _, filename = docpath.partition("/")
        doc = ctx.library.document_at(folder, filename) if docpath.count("/") == 1 else None
        if doc is None:
            failures.append(EmbedFailure(docpath, "Document not found"))
            continue
        try:
            text = content.blobs.get(doc.text_hash).decode()
            chunks = content.tokenizer.chunk(text, size, overlap)
            if not chunks:
                raise ValueError("the document has no text to embed")
            ensure_vectors(ctx, chunks)
        except Exception as e:  # noqa: BLE001 - reported to the caller, never swallowed
            failures.append(EmbedFailure(docpath, f"Embedding failed: {e}"))
            continue
        ready.append(WorkspaceDoc(doc_id=str(uuid.uuid4()), docpath=docpath, document_id=doc.document_id,
                                  text_hash=doc.text_hash, chunk_size=size, chunk_overlap=overlap,
                                  chunks=len(chunks)))
    return ready, failures


def ensure_vectors(ctx: Context, texts: list[str]) -> None:
    embedder = ctx.content.embedder
    by_hash = {chunk_hash(t): t for t in texts}
    missing = ctx.vectors.missing_embeddings(embedder.model_name, list(by_hash))
    for start in range(0, len(missing), 256):
        batch = missing[start:start + 256]
        vectors = embedder.embed([by_hash[h] for h in batch])
        ctx.vectors.put_embeddings(embedder.model_name, list(zip(batch, vectors)))


class UpdateEmbeddings(Command, frozen=True, kw_only=True):
    slug: str
    adds: list[str] = []
    deletes: list[str] = []


def update_embeddings(ctx: Context, cmd: UpdateEmbeddings) -> tuple[WorkspaceRow, list[EmbedFailure]]:
    check_can_manage_content(cmd.principal)
    _load(ctx, cmd.slug)
    ready, failures = _chunk_and_embed(ctx, cmd.adds)
    actor = cmd.actor()

    def attempt() -> WorkspaceRow:
        workspace = _load(ctx, cmd.slug)
        workspace.remove_documents(actor, cmd.deletes)
        workspace.embed(actor, ready)
        if workspace.pending_events:
            ctx.save(workspace, project=[ctx.library, ctx.vectors])
        return _reread(ctx, cmd.slug)

    return ctx.retrying(attempt), failures


class UpdatePin(Command, frozen=True, kw_only=True):
    slug: str
    docpath: str
    pinned: bool


def update_pin(ctx: Context, cmd: UpdatePin) -> None:
    check_can_manage_content(cmd.principal)

    def attempt() -> None:
        workspace = _load(ctx, cmd.slug)
        workspace.pin(cmd.actor(), cmd.docpath, cmd.pinned)
        if workspace.pending_events:
            ctx.save(workspace, project=[ctx.library])

    ctx.retrying(attempt)

