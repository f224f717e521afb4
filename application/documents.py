"""Documents: upload (file, link, raw text), folders, moves, removal; document queries.

The original bytes and the extracted text are kept as content-addressed blobs; the event
records their hashes, names, metadata and the actor, never the text or the vectors."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import msgspec

from application.access import check_can_manage_content, check_scope
from application.ledger import Context
from application.workspaces import EmbedFailure, UpdateEmbeddings, get_workspace, update_embeddings
from domain.documents import DEFAULT_FOLDER, METADATA_KEYS, Document, Folder, check_folder, folder_uuid, split_docpath
from domain.errors import DomainError, InvalidInput, NotFound
from domain.principal import Principal, Scope
from domain.workspaces import workspace_uuid


class Unprocessable(DomainError):
    status = 422


class DocumentRow(msgspec.Struct, frozen=True):
    document_id: str
    folder: str
    filename: str
    original_name: str
    source: str
    mime: str
    word_count: int
    token_count: int
    metadata: dict[str, str]
    created_at: str

    @property
    def docpath(self) -> str:
        return f"{self.folder}/{self.filename}"


class StoredDocument(msgspec.Struct, frozen=True):
    document: DocumentRow
    text: str
    failures: list[EmbedFailure]


def _published() -> str:
    now = datetime.now(timezone.utc)
    return f"{now.month}/{now.day}/{now.year}, {now.strftime('%I:%M:%S %p').lstrip('0')}"


def _metadata(name: str, source: str, url: str | None, parsed: dict[str, str], given: dict[str, Any]) -> dict[str, str]:
    """Upstream's metadata keys with its defaults; what the file says, then what the caller
    says. Only those keys are kept, so no caller can overwrite a document's location or id."""
    meta = {
        "url": url or f"file://{name}", "title": name, "docAuthor": "Unknown", "description": "Unknown",
        "docSource": {"upload": "a file uploaded by the user.", "link": "URL link uploaded by the user.",
                      "raw-text": "raw text uploaded by the user."}[source],
        "chunkSource": f"link://{url}" if url else name, "published": _published(),
    }
    parsed = {("docAuthor" if k == "author" else k): v for k, v in parsed.items()}
    meta.update({k: str(v) for k, v in parsed.items() if v and k in METADATA_KEYS})
    for key, value in given.items():
        if value is None or key not in METADATA_KEYS:
            continue
        if not isinstance(value, (str, int, float, bool)) or len(str(value)) > 10_000:
            raise InvalidInput(f"metadata value for {key!r} must be a short string")
        meta[key] = str(value)
    return meta


def store_document(
    ctx: Context, principal: Principal, correlation_id: str, *, folder: str | None, original_name: str, source: str,
    mime: str, data: bytes, text: str, metadata: dict[str, str], add_to_workspaces: list[str],
) -> StoredDocument:
    check_can_manage_content(principal)
    folder = check_folder(folder or DEFAULT_FOLDER)
    text = text.replace("\x00", "")  # binary junk; PostgreSQL text (the chunks) cannot hold it
    if not text.strip():
        raise Unprocessable("The document has no text content.")
    content = ctx.content
    content_hash = content.blobs.put(data)
    text_hash = content.blobs.put(text.encode())
    actor = principal.actor(correlation_id)
    document_id = str(uuid.uuid4())

    def attempt() -> Document:
        folder_agg: Folder | None = ctx.ledger.find(folder_uuid(folder))
        changed = []
        if folder_agg is None:
            changed.append(Folder.create(actor, folder))
        elif folder_agg.removed:
            folder_agg.restore(actor)
            changed.append(folder_agg)
        doc = Document.upload(actor, document_id, folder, original_name, source, mime, content_hash, text_hash,
                              len(data), len(text.split()), content.tokenizer.count(text), metadata)
        ctx.save(*changed, doc, project=[ctx.library])
        return doc

    doc = ctx.retrying(attempt)
    failures: list[EmbedFailure] = []
    for slug in add_to_workspaces:
        if get_workspace(ctx, slug) is None:
            failures.append(EmbedFailure(doc.docpath, f"Workspace {slug} is not a valid workspace."))
            continue
        _, failed = update_embeddings(ctx, UpdateEmbeddings(principal=principal, correlation_id=correlation_id,
                                                            slug=slug, adds=[doc.docpath]))
        failures += failed
    row = get_document(ctx, document_id)
    assert row is not None
    return StoredDocument(row, text, failures)


def upload_file(ctx: Context, principal: Principal, correlation_id: str, *, filename: str, data: bytes,
                content_type: str | None, folder: str | None, metadata: dict[str, Any],
                add_to_workspaces: list[str]) -> StoredDocument:
    check_can_manage_content(principal)
    content = ctx.content
    if len(data) > content.max_upload_bytes:
        raise DomainError(f"File is larger than the upload limit of {content.max_upload_bytes} bytes.")
    try:
        name = content.safe_filename(filename)
        parsed = content.parse(name, data, content_type)
    except ValueError as e:
        raise Unprocessable(str(e)) from None
    meta = _metadata(name, "upload", None, {"title": parsed.title, **parsed.metadata}, metadata)
    return store_document(ctx, principal, correlation_id, folder=folder, original_name=name, source="upload",
                          mime=parsed.mime, data=data, text=parsed.text, metadata=meta,
                          add_to_workspaces=add_to_workspaces)


def upload_link(ctx: Context, principal: Principal, correlation_id: str, *, link: str, headers: dict[str, str],
                metadata: dict[str, Any], add_to_workspaces: list[str]) -> StoredDocument:
    check_can_manage_content(principal)
    content = ctx.content
    try:
        page = content.fetch(link, headers=headers)
        parsed = content.parse(page.filename, page.data, page.content_type)
    except ValueError as e:
        raise Unprocessable(str(e)) from None
    meta = _metadata(page.filename, "link", page.url, {"title": parsed.title, **parsed.metadata}, metadata)
    return store_document(ctx, principal, correlation_id, folder=None, original_name=page.filename, source="link",
                          mime=parsed.mime, data=page.data, text=parsed.text, metadata=meta,
                          add_to_workspaces=add_to_workspaces)


def upload_raw_text(ctx: Context, principal: Principal, correlation_id: str, *, text: Any, metadata: Any,
                    add_to_workspaces: list[str]) -> StoredDocument:
    check_can_manage_content(principal)
    if not isinstance(text, str) or not text.strip():
        raise Unprocessable("The 'textContent' key cannot have an empty value.")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("title"), str) or not metadata["title"].strip():
        raise Unprocessable("You are missing required metadata key:value pairs in your request. "
                            "Required metadata key:values are 'title'")
    name = f"raw-{metadata['title'].strip()}"[:200]
    meta = _metadata(name, "raw-text", None, {}, metadata)
    return store_document(ctx, principal, correlation_id, folder=None, original_name=name, source="raw-text",
                          mime="text/plain", data=text.encode(), text=text, metadata=meta,
                          add_to_workspaces=add_to_workspaces)


# folders and moves --------------------------------------------------------------------------
def create_folder(ctx: Context, principal: Principal, correlation_id: str, name: Any) -> None:
    check_can_manage_content(principal)
    name = check_folder(name)
    actor = principal.actor(correlation_id)

    def attempt() -> None:
        folder: Folder | None = ctx.ledger.find(folder_uuid(name))
        if folder is None:
            folder = Folder.create(actor, name)
        else:
            folder.restore(actor)  # Conflict when it exists
        ctx.save(folder, project=[ctx.library])

    ctx.retrying(attempt)


def remove_folder(ctx: Context, principal: Principal, correlation_id: str, name: Any) -> int:
    """Remove a folder and its documents (unembedding them everywhere); returns how many."""
    check_can_manage_content(principal)
    name = check_folder(name)
    if name == DEFAULT_FOLDER:
        raise InvalidInput(f"The default folder {DEFAULT_FOLDER} cannot be removed.")
    actor = principal.actor(correlation_id)

    def attempt() -> int:
        folder: Folder | None = ctx.ledger.find(folder_uuid(name))
        if folder is None or folder.removed:
            raise NotFound("Folder not found")
        docs = [ctx.ledger.repository.get(uuid.UUID(r.document_id)) for r in list_folder(ctx, name)]
        changed = _unembed_everywhere(ctx, actor, [d.docpath for d in docs])
        for doc in docs:
            doc.delete(actor)
        folder.remove(actor)
        ctx.save(folder, *docs, *changed, project=[ctx.library, ctx.vectors])
        return len(docs)

    return ctx.retrying(attempt)


def _unembed_everywhere(ctx: Context, actor: Any, docpaths: list[str]) -> list[Any]:
    if not docpaths:
        return []
    marks = ",".join("?" * len(docpaths))
    with ctx.library.view.read() as tx:
        ids = sorted({r["workspace_id"] for r in tx.all(
            f"SELECT workspace_id FROM workspace_documents WHERE docpath IN ({marks})", tuple(docpaths))})
    workspaces = [ctx.ledger.repository.get(workspace_uuid(i)) for i in ids]
    for workspace in workspaces:
        workspace.remove_documents(actor, docpaths)
    return workspaces


def remove_documents(ctx: Context, principal: Principal, correlation_id: str, names: list[str]) -> int:
    check_can_manage_content(principal)
    actor = principal.actor(correlation_id)
    for name in names:
        split_docpath(name)

    def attempt() -> int:
        docs = []
        for name in dict.fromkeys(names):
            row = document_by_path(ctx, name)
            if row is not None:
                docs.append(ctx.ledger.repository.get(uuid.UUID(row.document_id)))
        if not docs:
            raise NotFound("None of those documents exist.")
        changed = _unembed_everywhere(ctx, actor, [d.docpath for d in docs])
        for doc in docs:
            doc.delete(actor)
        ctx.save(*docs, *changed, project=[ctx.library, ctx.vectors])
        return len(docs)

    return ctx.retrying(attempt)


def move_files(ctx: Context, principal: Principal, correlation_id: str, moves: list[tuple[str, str]]) -> tuple[int, int]:
    """Move documents between folders; embedded ones are not moved (as upstream). Returns
    (moved, not moved). A move never overwrites: the file name stays, only the folder changes."""
    check_can_manage_content(principal)
    actor = principal.actor(correlation_id)
    plan = []
    for source, target in moves:
        _, name = split_docpath(source)
        folder, target_name = split_docpath(target)
        if target_name != name:
            raise InvalidInput(f"Moving {source!r}: the target must keep the file name ({folder}/{name}).")
        plan.append((source, folder))

    def attempt() -> tuple[int, int]:
        folders: dict[str, Folder] = {}
        docs: dict[str, Document] = {}
        skipped = 0
        for source, folder in plan:
            row = document_by_path(ctx, source)
            if row is None:
                raise NotFound(f"Document {source} not found")
            if embedded_in(ctx, source):
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
_DOC_SELECT = ("SELECT document_id, folder, filename, original_name, source, mime, word_count, token_count,"
               " metadata, created_at FROM documents")


def _doc(r: dict[str, Any]) -> DocumentRow:
    r = dict(r)
    r["metadata"] = json.loads(r["metadata"])
    return msgspec.convert(r, DocumentRow)


def get_document(ctx: Context, document_id: str) -> DocumentRow | None:
    with ctx.library.view.read() as tx:
        row = tx.one(_DOC_SELECT + " WHERE document_id = ?", (document_id,))
    return _doc(row) if row else None


def document_by_path(ctx: Context, docpath: str) -> DocumentRow | None:
    folder, filename = split_docpath(docpath)
    with ctx.library.view.read() as tx:
        row = tx.one(_DOC_SELECT + " WHERE folder = ? AND filename = ?", (folder, filename))
    return _doc(row) if row else None


def document_by_name(ctx: Context, principal: Principal, filename: str) -> DocumentRow | None:
    check_scope(principal, Scope.READ)
    with ctx.library.view.read() as tx:
        row = tx.one(_DOC_SELECT + " WHERE filename = ? ORDER BY created_at LIMIT 1", (filename,))
    return _doc(row) if row else None


def folders(ctx: Context) -> list[str]:
    with ctx.library.view.read() as tx:
        return [r["name"] for r in tx.all("SELECT name FROM folders ORDER BY name")]


def folder_exists(ctx: Context, name: str) -> bool:
    with ctx.library.view.read() as tx:
        return tx.one("SELECT name FROM folders WHERE name = ?", (name,)) is not None


def list_folder(ctx: Context, folder: str, offset: int = 0, limit: int | None = None) -> list[DocumentRow]:
    sql = _DOC_SELECT + " WHERE folder = ? ORDER BY created_at, filename"
    params: tuple[Any, ...] = (folder,)
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += (limit, offset)
    with ctx.library.view.read() as tx:
        return [_doc(r) for r in tx.all(sql, params)]


def count_folder(ctx: Context, folder: str) -> int:
    with ctx.library.view.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) FROM documents WHERE folder = ?", (folder,)) or 0)


def embedded_in(ctx: Context, docpath: str) -> list[int]:
    """Ids of the workspaces the document is embedded in."""
    with ctx.library.view.read() as tx:
        return [r["workspace_id"] for r in tx.all(
            "SELECT DISTINCT workspace_id FROM workspace_documents WHERE docpath = ? ORDER BY workspace_id", (docpath,))]


def pinned_in(ctx: Context, docpath: str) -> list[int]:
    with ctx.library.view.read() as tx:
        return [r["workspace_id"] for r in tx.all(
            "SELECT DISTINCT workspace_id FROM workspace_documents WHERE docpath = ? AND pinned = 1", (docpath,))]


