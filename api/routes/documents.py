"""Documents over /api/v1: upload (file, link, raw text), listings, folders, moves, removal."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from msgspec import Meta

from api.auth import requires_scope
from api.presenters import request_id
from application import documents as docs
from application.ledger import Context
from domain.errors import DomainError, InvalidInput

COMMON = {"sync_to_thread": True}
MAX_LISTING = 1000


def document_out(ctx: Context, d: docs.DocumentRow, *, text: str | None = None) -> dict[str, Any]:
    """Upstream's document entry: location/name, the metadata keys, counts and where it is used."""
    out = {
        **d.metadata, "id": d.document_id, "location": d.docpath, "name": d.filename, "type": "file",
        "wordCount": d.word_count, "token_count_estimate": d.token_count,
        "cached": bool(docs.embedded_in(ctx, d.docpath)), "pinnedWorkspaces": docs.pinned_in(ctx, d.docpath),
        "watched": False,
    }
    if text is not None:
        out["pageContent"] = text
    return out


def _stored(ctx: Context, result: docs.StoredDocument, with_text: bool) -> dict[str, Any]:
    return {"success": True, "error": None,
            "documents": [document_out(ctx, result.document, text=result.text if with_text else None)],
            "failedToEmbed": [f.docpath for f in result.failures],
            "embeddingErrors": [f.error for f in result.failures]}


def _workspaces(value: Any) -> list[str]:
    """`addToWorkspaces`: a comma-separated string of slugs (upstream answers 422 otherwise)."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise docs.Unprocessable("addToWorkspaces must be a comma-separated string of workspace slugs")
    return [s.strip() for s in value.split(",") if s.strip()]


def _metadata(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput("metadata must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object")
    return value


def _failure(e: DomainError) -> Response[dict[str, Any]]:
    return Response({"success": False, "error": str(e), "documents": []}, status_code=e.status)


class LinkBody(msgspec.Struct):
    link: Annotated[str, Meta(max_length=4096)]
    addToWorkspaces: str | None = None
    scraperHeaders: dict[str, Annotated[str, Meta(max_length=4096)]] | None = None
    metadata: dict[str, Any] | None = None


class RawTextBody(msgspec.Struct):
    textContent: Any = None
    metadata: Any = None
    addToWorkspaces: str | None = None


class FolderBody(msgspec.Struct):
    name: Annotated[str, Meta(max_length=200)]


class Move(msgspec.Struct, rename={"source": "from", "target": "to"}):
    source: Annotated[str, Meta(max_length=1000)]
    target: Annotated[str, Meta(max_length=1000)]


class MoveBody(msgspec.Struct):
    files: Annotated[list[Move], Meta(max_length=1000)]


class RemoveBody(msgspec.Struct):
    names: Annotated[list[Annotated[str, Meta(max_length=1000)]], Meta(max_length=10_000)]


Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]


class DocumentController(Controller):
    path = "/"
    tags = ["Documents"]

    def _upload(self, ctx: Context, request: Request, data: dict[str, Any], folder: str | None) -> Response[Any]:
        upload = data.get("file")
        try:
            if not isinstance(upload, UploadFile):
                raise InvalidInput("No file was uploaded: send it as the multipart field 'file'.")
            body = upload.file.read(ctx.content.max_upload_bytes + 1)
            result = docs.upload_file(
                ctx, request.user, request_id(request), filename=upload.filename or "", data=body,
                content_type=upload.content_type, folder=folder, metadata=_metadata(data.get("metadata")),
                add_to_workspaces=_workspaces(data.get("addToWorkspaces")))
        except DomainError as e:
            return _failure(e)
        return Response(_stored(ctx, result, with_text=False))

    @post("/document/upload", operation_id="v1UploadDocument", status_code=200, **COMMON)
    def upload(self, ctx: Context, request: Request, data: Multipart) -> Response[dict[str, Any]]:
        """Multipart `file`, optional `addToWorkspaces` (comma-separated slugs) and `metadata`."""
        return self._upload(ctx, request, data, None)

    @post("/document/upload/{folder_name:str}", operation_id="v1UploadDocumentToFolder", status_code=200, **COMMON)
    def upload_to_folder(self, ctx: Context, request: Request, folder_name: str, data: Multipart) -> Response[dict[str, Any]]:
        return self._upload(ctx, request, data, folder_name)

    @post("/document/upload-link", operation_id="v1UploadLink", status_code=200, **COMMON)
    def upload_link(self, ctx: Context, request: Request, data: LinkBody) -> Response[dict[str, Any]]:
        """Fetch a page (http/https only; private, loopback and link-local addresses refused
        unless LINK_ALLOWLIST names them, checked on every redirect; size and time capped)."""
        try:
            result = docs.upload_link(ctx, request.user, request_id(request), link=data.link,
                                      headers=data.scraperHeaders or {}, metadata=data.metadata or {},
                                      add_to_workspaces=_workspaces(data.addToWorkspaces))
        except DomainError as e:
            return _failure(e)
        return Response(_stored(ctx, result, with_text=True))

    @post("/document/raw-text", operation_id="v1UploadRawText", status_code=200, **COMMON)
    def raw_text(self, ctx: Context, request: Request, data: RawTextBody) -> Response[dict[str, Any]]:
        try:
            result = docs.upload_raw_text(ctx, request.user, request_id(request), text=data.textContent,
                                          metadata=data.metadata, add_to_workspaces=_workspaces(data.addToWorkspaces))
        except DomainError as e:
            return _failure(e)
        return Response(_stored(ctx, result, with_text=True))

    @get("/documents", operation_id="v1ListDocuments", guards=[requires_scope("read")], **COMMON)
    def list_documents(self, ctx: Context, folder: str | None = None, offset: int = 0,
                       limit: Annotated[str | None, Parameter(description="a number up to 1000, or 'all'")] = None,
                       ) -> Response[dict[str, Any]]:
        if folder is not None:
            return self._folder(ctx, folder, offset, limit or "100")
        items = [{"name": name, "type": "folder", "items": [document_out(ctx, d) for d in docs.list_folder(ctx, name)]}
                 for name in docs.folders(ctx)]
        return Response({"localFiles": {"name": "documents", "type": "folder", "items": items}})

    @get("/documents/folder/{folder_name:str}", operation_id="v1ListFolder", guards=[requires_scope("read")], **COMMON)
    def list_folder(self, ctx: Context, folder_name: str, offset: int = 0,
                    limit: str | None = None) -> Response[dict[str, Any]]:
        return self._folder(ctx, folder_name, offset, limit or "all")

    def _folder(self, ctx: Context, folder: str, offset: int, limit: str) -> Response[dict[str, Any]]:
        if limit != "all" and (not limit.isdigit() or not 1 <= int(limit) <= MAX_LISTING):
            return Response({"folder": folder, "documents": [], "totalCount": 0, "hasMore": False,
                             "error": f"limit must be 'all' or 1-{MAX_LISTING}"}, status_code=400)
        if offset < 0:
            return Response({"folder": folder, "documents": [], "totalCount": 0, "hasMore": False,
                             "error": "offset must not be negative"}, status_code=400)
        if not docs.folder_exists(ctx, folder):
            return Response({"folder": folder, "documents": [], "totalCount": 0, "hasMore": False,
                             "error": f"Folder {folder} does not exist"}, status_code=404)
        size = MAX_LISTING if limit == "all" else int(limit)
        rows = docs.list_folder(ctx, folder, offset, size)
        total = docs.count_folder(ctx, folder)
        return Response({"folder": folder, "documents": [document_out(ctx, d) for d in rows], "totalCount": total,
                         "hasMore": offset + len(rows) < total, "error": None})

    @get("/document/accepted-file-types", operation_id="v1AcceptedFileTypes", **COMMON)
    def accepted_types(self, ctx: Context) -> dict[str, Any]:
        return {"types": ctx.content.accepted_file_types()}

    @get("/document/metadata-schema", operation_id="v1MetadataSchema", **COMMON)
    def metadata_schema(self) -> dict[str, Any]:
        return {"schema": {"url": "string | nullable", "title": "string", "docAuthor": "string | nullable",
                           "description": "string | nullable", "docSource": "string | nullable",
                           "chunkSource": "string | nullable", "published": "epoch timestamp in ms | nullable"}}

    @get("/document/{doc_name:str}", operation_id="v1GetDocument", **COMMON)
    def get_document(self, ctx: Context, request: Request, doc_name: str) -> Response[dict[str, Any]]:
        row = docs.document_by_name(ctx, request.user, doc_name)
        if row is None:
            return Response({"document": None, "error": "Document not found"}, status_code=404)
        return Response({"document": document_out(ctx, row)})

    @post("/document/create-folder", operation_id="v1CreateFolder", status_code=200, **COMMON)
    def create_folder(self, ctx: Context, request: Request, data: FolderBody) -> Response[dict[str, Any]]:
        try:
            docs.create_folder(ctx, request.user, request_id(request), data.name)
        except DomainError as e:
            return Response({"success": False, "message": str(e)}, status_code=e.status)
        return Response({"success": True, "message": None})

    @delete("/document/remove-folder", operation_id="v1RemoveFolder", status_code=200, **COMMON)
    def remove_folder(self, ctx: Context, request: Request, data: FolderBody) -> Response[dict[str, Any]]:
        """Removes the folder and its documents, unembedding them (404 when there is no such folder)."""
        try:
            docs.remove_folder(ctx, request.user, request_id(request), data.name)
        except DomainError as e:
            return Response({"success": False, "message": str(e)}, status_code=e.status)
        return Response({"success": True, "message": "Folder removed successfully"})

    @post("/document/move-files", operation_id="v1MoveFiles", status_code=200, **COMMON)
    def move_files(self, ctx: Context, request: Request, data: MoveBody) -> Response[dict[str, Any]]:
        try:
            moved, skipped = docs.move_files(ctx, request.user, request_id(request),
                                             [(m.source, m.target) for m in data.files])
        except DomainError as e:
            return Response({"success": False, "message": str(e)}, status_code=e.status)
        message = None if not skipped else f"{skipped}/{moved + skipped} files not moved. Unembed them from all workspaces."
        return Response({"success": True, "message": message})

    @delete("/system/remove-documents", operation_id="v1RemoveDocuments", status_code=200, **COMMON)
    def remove_documents(self, ctx: Context, request: Request, data: RemoveBody) -> Response[dict[str, Any]]:
        """Remove documents by docpath, with their vectors and every workspace link."""
        try:
            docs.remove_documents(ctx, request.user, request_id(request), data.names)
        except DomainError as e:
            return Response({"success": False, "message": str(e)}, status_code=e.status)
        return Response({"success": True, "message": "Documents removed successfully"})
