"""Documents: upload (file, link, raw text), folders, moves, removal; document queries.

The original bytes and the extracted text are kept as content-addressed blobs; the event
records their hashes, names, metadata and the actor, never the text or the vectors."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from application.access import check_can_manage_content, check_scope, restricted
from application.ledger import Command, Context
from application.rows import DocumentRow, DocumentUse
from application.workspaces import EmbedFailure, UpdateEmbeddings, get_workspace, update_embeddings
from domain.documents import DEFAULT_FOLDER, METADATA_KEYS, Document, Folder, check_folder, folder_uuid, split_docpath
from domain.errors import DomainError, InvalidInput, NotFound
from domain.principal import Actor, Principal, Scope
from domain.workspaces import Workspace, workspace_uuid

__all__ = ["DocumentRow"]

MetaValue = str | int | float | bool | None
Metadata = dict[str, MetaValue]  # what a caller may say about a document (upstream's metadata keys)


class Unprocessable(DomainError):
    status = 422


class StoredDocument(msgspec.Struct, frozen=True):
    document: DocumentRow
    text: str
    failures: list[EmbedFailure]


def _published(now: datetime) -> str:
    return f"{now.month}/{now.day}/{now.year}, {now.strftime('%I:%M:%S %p').lstrip('0')}"


def _metadata(ctx: Context, name: str, source: str, url: str | None, parsed: dict[str, str],
              given: Metadata) -> dict[str, str]:
    """Upstream's metadata keys with its defaults; what the file says, then what the caller
    says. Only those keys are kept, so no caller can overwrite a document's location or id."""
    meta = {
        "url": url or f"file://{name}", "title": name, "docAuthor": "Unknown", "description": "Unknown",
        "docSource": {"upload": "a file uploaded by the user.", "link": "URL link uploaded by the user.",
                      "raw-text": "raw text uploaded by the user."}[source],
        "chunkSource": f"link://{url}" if url else name, "published": _published(ctx.clock.now()),
    }
    parsed = {("docAuthor" if k == "author" else k): v for k, v in parsed.items()}
    meta.update({k: str(v) for k, v in parsed.items() if v and k in METADATA_KEYS})
    for key, value in given.items():
        if value is None or key not in METADATA_KEYS:
            continue
        if len(str(value)) > 10_000:
            raise InvalidInput(f"metadata value for {key!r} must be a short string")
        meta[key] = str(value)
    return meta


class Extracted(msgspec.Struct, frozen=True, kw_only=True):
    """What an upload handler hands to `_store`: the original bytes, their text and metadata."""

    folder: str | None
    original_name: str
    source: str
    mime: str
    data: bytes
    text: str
    metadata: dict[str, str]


def _store(ctx: Context, cmd: Command, doc_in: Extracted, add_to_workspaces: list[str]) -> StoredDocument:
    """Keep the blobs, record `Document.Uploaded` (and the folder if new), then embed the
    document in each named workspace; unknown workspaces are reported as failures."""
    folder = check_folder(doc_in.folder or DEFAULT_FOLDER)
    text = doc_in.text.replace("\x00", "")  # binary junk; PostgreSQL text (the chunks) cannot hold it
    if not text.strip():
        raise Unprocessable("The document has no text content.")
    content = ctx.content
    content_hash = content.blobs.put(doc_in.data)
    text_hash = content.blobs.put(text.encode())
    actor = cmd.actor()
    document_id = str(uuid.uuid4())

    def attempt() -> Document:
        folder_agg: Folder | None = ctx.ledger.find(folder_uuid(folder))
        changed = []
        if folder_agg is None:
            changed.append(Folder.create(actor, folder))
        elif folder_agg.removed:
            folder_agg.restore(actor)
            changed.append(folder_agg)
        doc = Document.upload(actor, document_id, folder, doc_in.original_name, doc_in.source, doc_in.mime,
                              content_hash, text_hash, len(doc_in.data), len(text.split()),
                              content.tokenizer.count(text), doc_in.metadata)
        ctx.save(*changed, doc, project=[ctx.library])
        return doc

    doc = ctx.retrying(attempt)
    failures: list[EmbedFailure] = []
    for slug in add_to_workspaces:
        if get_workspace(ctx, slug) is None:
            failures.append(EmbedFailure(doc.docpath, f"Workspace {slug} is not a valid workspace."))
            continue
        _, failed = update_embeddings(ctx, UpdateEmbeddings(principal=cmd.principal, correlation_id=cmd.correlation_id,
                                                            slug=slug, adds=[doc.docpath]))
        failures += failed
    row = get_document(ctx, document_id)
    assert row is not None
    return StoredDocument(row, text, failures)


class UploadFile(Command, frozen=True, kw_only=True):
    filename: str
    data: bytes
    content_type: str | None = None
    folder: str | None = None
    metadata: Metadata = {}
    add_to_workspaces: list[str] = []


def upload_file(ctx: Context, cmd: UploadFile) -> StoredDocument:
    check_can_manage_content(cmd.principal)
    content = ctx.content
    if len(cmd.data) > content.max_upload_bytes:
        raise DomainError(f"File is larger than the upload limit of {content.max_upload_bytes} bytes.")
    try:
        name = content.safe_filename(cmd.filename)
        parsed = content.parse(name, cmd.data, cmd.content_type)
    except ValueError as e:
        raise Unprocessable(str(e)) from None
    meta = _metadata(ctx, name, "upload", None, {"title": parsed.title, **parsed.metadata}, cmd.metadata)
    return _store(ctx, cmd, Extracted(folder=cmd.folder, original_name=name, source="upload", mime=parsed.mime,
                                      data=cmd.data, text=parsed.text, metadata=meta), cmd.add_to_workspaces)


class UploadLink(Command, frozen=True, kw_only=True):
    link: str
    headers: dict[str, str] = {}
    metadata: Metadata = {}
    add_to_workspaces: list[str] = []


def upload_link(ctx: Context, cmd: UploadLink) -> StoredDocument:
    check_can_manage_content(cmd.principal)
    content = ctx.content
    try:
        page = content.fetch(cmd.link, headers=cmd.headers)
        parsed = content.parse(page.filename, page.data, page.content_type)
    except ValueError as e:
        raise Unprocessable(str(e)) from None
    meta = _metadata(ctx, page.filename, "link", page.url, {"title": parsed.title, **parsed.metadata}, cmd.metadata)
    return _store(ctx, cmd, Extracted(folder=None, original_name=page.filename, source="link", mime=parsed.mime,
                                      data=page.data, text=parsed.text, metadata=meta), cmd.add_to_workspaces)


class UploadRawText(Command, frozen=True, kw_only=True):
    """`text` and `metadata` may be missing (None): the handler refuses them with upstream's words."""

    text: str | None
    metadata: Metadata | None
    add_to_workspaces: list[str] = []


def upload_raw_text(ctx: Context, cmd: UploadRawText) -> StoredDocument:
    check_can_manage_content(cmd.principal)
    if cmd.text is None or not cmd.text.strip():
        raise Unprocessable("The 'textContent' key cannot have an empty value.")
    title = (cmd.metadata or {}).get("title")
    if cmd.metadata is None or not isinstance(title, str) or not title.strip():
        raise Unprocessable("You are missing required metadata key:value pairs in your request. "
                            "Required metadata key:values are 'title'")
    name = f"raw-{title.strip()}"[:200]
    meta = _metadata(ctx, name, "raw-text", None, {}, cmd.metadata)
    return _store(ctx, cmd, Extracted(folder=None, original_name=name, source="raw-text", mime="text/plain",
                                      data=cmd.text.encode(), text=cmd.text, metadata=meta), cmd.add_to_workspaces)


# folders and moves --------------------------------------------------------------------------
class CreateFolder(Command, frozen=True, kw_only=True):
    name: str


def create_folder(ctx: Context, cmd: CreateFolder) -> None:
    check_can_manage_content(cmd.principal)
    name = check_folder(cmd.name)
    actor = cmd.actor()

    def attempt() -> None:
        folder: Folder | None = ctx.ledger.find(folder_uuid(name))
        if folder is None:
            folder = Folder.create(actor, name)
        else:
            folder.restore(actor)  # Conflict when it exists
        ctx.save(folder, project=[ctx.library])

    ctx.retrying(attempt)


class RemoveFolder(Command, frozen=True, kw_only=True):
    name: str


def remove_folder(ctx: Context, cmd: RemoveFolder) -> int:
    """Remove a folder and its documents (unembedding them everywhere); returns how many."""
    check_can_manage_content(cmd.principal)
    name = check_folder(cmd.name)
    if name == DEFAULT_FOLDER:
        raise InvalidInput(f"The default folder {DEFAULT_FOLDER} cannot be removed.")
    actor = cmd.actor()

    def attempt() -> int:
        folder: Folder | None = ctx.ledger.find(folder_uuid(name))
        if folder is None or folder.removed:
            raise NotFound("Folder not found")
        docs: list[Document] = [ctx.ledger.repository.get(uuid.UUID(r.document_id))
                                for r in ctx.library.folder_documents(name)]
        changed = _unembed_everywhere(ctx, actor, [d.docpath for d in docs])
        for doc in docs:
            doc.delete(actor)
        folder.remove(actor)
        ctx.save(folder, *docs, *changed, project=[ctx.library, ctx.vectors])
        return len(docs)

    return ctx.retrying(attempt)


def _unembed_everywhere(ctx: Context, actor: Actor, docpaths: list[str]) -> list[Workspace]:
    if not docpaths:
        return []
    workspaces: list[Workspace] = [ctx.ledger.repository.get(workspace_uuid(i))
                                   for i in ctx.library.workspaces_holding(docpaths)]
    for workspace in workspaces:
        workspace.remove_documents(actor, docpaths)
    return workspaces


class RemoveDocuments(Command, frozen=True, kw_only=True):
    names: list[str]  # docpaths, `folder/file.json`


def remove_documents(ctx: Context, cmd: RemoveDocuments) -> int:
    """Remove the documents at these docpaths; unknown ones are left out and, as upstream, an
    empty or unknown list is a success that removes nothing. Returns how many were removed."""
    check_can_manage_content(cmd.principal)
    actor = cmd.actor()
    paths = list(dict.fromkeys(split_docpath(name) for name in cmd.names))

    def attempt() -> int:
        docs: list[Document] = []
        for folder, filename in paths:
            row = ctx.library.document_at(folder, filename)
            if row is not None:
                docs.append(ctx.ledger.repository.get(uuid.UUID(row.document_id)))
        if not docs:
            return 0
        changed = _unembed_everywhere(ctx, actor, [d.docpath for d in docs])
        for doc in docs:
            doc.delete(actor)
        ctx.save(*docs, *changed, project=[ctx.library, ctx.vectors])
        return len(docs)

    return ctx.retrying(attempt)


class MoveFiles(Command, frozen=True, kw_only=True):
    moves: list[tuple[str, str]]  # (source docpath, target docpath), the file name kept


def move_files(ctx: Context, cmd: MoveFiles) -> tuple[int, int]:
    """Move documents between folders; embedded ones are not moved (as upstream). Returns
    (moved, not moved). A move never overwrites: the file name stays, only the folder changes."""
    check_can_manage_content(cmd.principal)
    actor = cmd.actor()
    plan = []
    for source, target in cmd.moves:
        source_folder, name = split_docpath(source)
        folder, target_name = split_docpath(target)
        if target_name != name:
            raise InvalidInput(f"Moving {source!r}: the target must keep the file name ({folder}/{name}).")
        plan.append((f"{source_folder}/{name}", folder))

    def attempt() -> tuple[int, int]:
        folders: dict[str, Folder] = {}
        docs: dict[str, Document] = {}
        skipped = 0
        for source, folder in plan:
            row = document_by_path(ctx, source)
            if row is None:
                raise NotFound(f"Document {source} not found")
            if ctx.library.workspaces_holding([source]):
                skipped += 1
                continue
            if folder not in folders:
                target: Folder | None = ctx.ledger.find(folder_uuid(folder))
                if target is None:
                    target = Folder.create(actor, folder)
                elif target.removed:
                    target.restore(actor)
                folders[folder] = target
            doc = docs.get(row.document_id) or ctx.ledger.repository.get(uuid.UUID(row.document_id))
            docs[row.document_id] = doc
            doc.move(actor, folder)
        changed = [a for a in (*folders.values(), *docs.values()) if a.pending_events]
        if changed:
            ctx.save(*changed, project=[ctx.library])
        return len(plan) - skipped, skipped

    return ctx.retrying(attempt)


# queries ------------------------------------------------------------------------------------
def _member(ctx: Context, principal: Principal) -> int | None:
    """The user whose workspaces bound what the caller may see (None: admins and managers see all)."""
    return principal.user_id if restricted(ctx, principal) else None


def get_document(ctx: Context, document_id: str) -> DocumentRow | None:
    return ctx.library.document(document_id)


def document_by_path(ctx: Context, docpath: str) -> DocumentRow | None:
    folder, filename = split_docpath(docpath)
    return ctx.library.document_at(folder, filename)


def document_by_name(ctx: Context, principal: Principal, filename: str) -> DocumentRow:
    """The document with this file name, if the caller may see it (a default user: only those
    in their workspaces); NotFound otherwise."""
    check_scope(principal, Scope.READ)
    row = ctx.library.document_named(filename, member=_member(ctx, principal))
    if row is None:
        raise NotFound("Document not found")
    return row


class FolderListing(msgspec.Struct, frozen=True):
    name: str
    documents: list[DocumentRow]


def list_documents(ctx: Context, principal: Principal) -> list[FolderListing]:
    """Every folder with its documents, as far as the caller may see them."""
    check_scope(principal, Scope.READ)
    member = _member(ctx, principal)
    return [FolderListing(name, ctx.library.folder_documents(name, member=member))
            for name in ctx.library.folders(member=member)]


class FolderPage(msgspec.Struct, frozen=True):
    folder: str
    documents: list[DocumentRow]
    total: int


def list_folder(ctx: Context, principal: Principal, folder: str, offset: int, limit: int) -> FolderPage:
    """A page of one folder's documents (those the caller may see); NotFound for no such folder."""
    check_scope(principal, Scope.READ)
    name = check_folder(folder)
    if not ctx.library.folder_exists(name):
        raise NotFound(f"Folder {name} does not exist")
    member = _member(ctx, principal)
    return FolderPage(name, ctx.library.folder_documents(name, offset, limit, member=member),
                      ctx.library.count_folder(name, member=member))


def document_uses(ctx: Context, documents: list[DocumentRow]) -> dict[str, DocumentUse]:
    """Where each document is embedded and pinned, by docpath (one query for a whole page)."""
    return ctx.library.document_uses(d.docpath for d in documents)
