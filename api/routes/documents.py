"""Documents over /api/v1: upload (file, link, raw text), listings, folders, moves, removal.
Errors go through `api.errors`: each route names its family's error body and the statuses
it may raise. Folder and document names are normalised (NFKC, trimmed, no control or bidi
characters) by `domain.documents` before anything is looked up or stored."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from msgspec import Meta

from api.auth import requires_scope
from api.errors import raises
from api.presenters import request_id
from api.presenters.library import (
    DocumentAnswer, DocumentError, DocumentOut, DocumentsAnswer, DocumentsError, FolderAnswer, FolderError,
    FolderOut, LocalFiles, StoredAnswer, SuccessMessage, document_out,
)
from application import documents as docs
from application.documents import Metadata, Unprocessable
from application.ledger import Context
from application.rows import DocumentRow
from domain.errors import InvalidInput, NotFound

COMMON = {"sync_to_thread": True}
MAX_LISTING = 1000
DocPath = Annotated[str, Meta(min_length=1, max_length=1000)]
FolderName = Annotated[str, Meta(min_length=1, max_length=200)]
FolderQuery = Annotated[str | None, Parameter(min_length=1, max_length=200, description="only this folder")]
FolderPath = Annotated[str, Parameter(min_length=1, max_length=200, description="a folder name")]
MetaKey = Annotated[str, Meta(max_length=100)]
MetaField = Annotated[str, Meta(max_length=10_000)] | int | float | bool | None
MetadataIn = Annotated[dict[MetaKey, MetaField], Meta(max_length=100)]
Slugs = str | Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=1000)] | None
ListLimit = Annotated[str | None, Parameter(pattern=r"^(all|[1-9][0-9]{0,2}|1000)$", description="a number up to 1000, or 'all'")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000_000)]
UPLOAD_ERRORS = {"error_shape": DocumentsError, **raises(404, 413, Unprocessable)}
SUCCESS_ERRORS = {"error_shape": SuccessMessage}


def _workspaces(value: Slugs) -> list[str]:
    """`addToWorkspaces`: a comma-separated string of slugs (upstream answers 422 otherwise)."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise Unprocessable("addToWorkspaces must be a comma-separated string of workspace slugs")
    return [s.strip() for s in value.split(",") if s.strip()]


def _form_metadata(value: str | None) -> Metadata:
    """A multipart `metadata` field: a JSON object of upstream's metadata keys."""
    if value is None or value == "":
        return {}
    try:
        return msgspec.json.decode(value, type=MetadataIn)
    except msgspec.DecodeError:
        raise InvalidInput("metadata must be a JSON object of short values") from None


def _stored(ctx: Context, result: docs.StoredDocument, with_text: bool) -> StoredAnswer:
    d = result.document
    use = docs.document_uses(ctx, [d])[d.docpath]
    return StoredAnswer(True, None, [document_out(d, use, result.text if with_text else None)],
                        [f.docpath for f in result.failures], [f.error for f in result.failures])


def _documents_out(ctx: Context, rows: list[DocumentRow]) -> list[DocumentOut]:
    uses = docs.document_uses(ctx, rows)
    return [document_out(d, uses[d.docpath]) for d in rows]


class UploadForm(msgspec.Struct):
    """Multipart: `file`, optional `addToWorkspaces` (comma-separated slugs) and `metadata` (JSON)."""

    file: UploadFile | None = None
    addToWorkspaces: Slugs = None
    metadata: Annotated[str, Meta(max_length=1_000_000)] | None = None


class LinkBody(msgspec.Struct):
    link: Annotated[str, Meta(max_length=4096)]
    addToWorkspaces: Slugs = None
    scraperHeaders: Annotated[dict[Annotated[str, Meta(max_length=256)], Annotated[str, Meta(max_length=4096)]],
                              Meta(max_length=50)] | None = None
    metadata: MetadataIn | None = None


class RawTextBody(msgspec.Struct):
    textContent: Annotated[str, Meta(max_length=50_000_000)] | int | float | bool | None = None  # upstream: 422 unless text
    metadata: MetadataIn | None = None
    addToWorkspaces: Slugs = None


class FolderBody(msgspec.Struct):
    name: FolderName


class Move(msgspec.Struct, rename={"source": "from", "target": "to"}):
    source: DocPath
    target: DocPath


class MoveBody(msgspec.Struct):
    files: Annotated[list[Move], Meta(max_length=1000)]


class RemoveBody(msgspec.Struct):
    names: Annotated[list[DocPath], Meta(max_length=10_000)] = []


Multipart = Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)]


class TypesAnswer(msgspec.Struct):
    types: dict[str, list[str]]


class SchemaAnswer(msgspec.Struct):
    schema: dict[str, str]


class DocumentController(Controller):
    path = "/"
    tags = ["Documents"]

    def _upload(self, ctx: Context, request: Request, data: UploadForm, folder: str | None) -> StoredAnswer:
        upload = data.file
        if not isinstance(upload, UploadFile):
            raise InvalidInput("No file was uploaded: send it as the multipart field 'file'.")
        body = upload.file.read(ctx.content.max_upload_bytes + 1)
        result = docs.upload_file(ctx, docs.UploadFile(
            principal=request.user, correlation_id=request_id(request), filename=upload.filename or "", data=body,
            content_type=upload.content_type, folder=folder, metadata=_form_metadata(data.metadata),
            add_to_workspaces=_workspaces(data.addToWorkspaces)))
        return _stored(ctx, result, with_text=False)

    @post("/document/upload", operation_id="v1UploadDocument", status_code=200, opt=UPLOAD_ERRORS, **COMMON)
    def upload(self, ctx: Context, request: Request, data: Multipart) -> StoredAnswer:
        """Multipart `file`, optional `addToWorkspaces` (comma-separated slugs) and `metadata`."""
        return self._upload(ctx, request, data, None)

    @post("/document/upload/{folder_name:str}", operation_id="v1UploadDocumentToFolder", status_code=200,
          opt=UPLOAD_ERRORS, **COMMON)
    def upload_to_folder(self, ctx: Context, request: Request, folder_name: FolderPath, data: Multipart) -> StoredAnswer:
        return self._upload(ctx, request, data, folder_name)

    @post("/document/upload-link", operation_id="v1UploadLink", status_code=200, opt=UPLOAD_ERRORS, **COMMON)
    def upload_link(self, ctx: Context, request: Request, data: LinkBody) -> StoredAnswer:
        """Fetch a page (http/https only; private, loopback and link-local addresses refused
        unless LINK_ALLOWLIST names them, checked on every redirect; size and time capped)."""
        result = docs.upload_link(ctx, docs.UploadLink(
            principal=request.user, correlation_id=request_id(request), link=data.link,
            headers=data.scraperHeaders or {}, metadata=data.metadata or {},
            add_to_workspaces=_workspaces(data.addToWorkspaces)))
        return _stored(ctx, result, with_text=True)

    @post("/document/raw-text", operation_id="v1UploadRawText", status_code=200, opt=UPLOAD_ERRORS, **COMMON)
    def raw_text(self, ctx: Context, request: Request, data: RawTextBody) -> StoredAnswer:
        text = data.textContent if isinstance(data.textContent, str) else None
        result = docs.upload_raw_text(ctx, docs.UploadRawText(
            principal=request.user, correlation_id=request_id(request), text=text, metadata=data.metadata,
            add_to_workspaces=_workspaces(data.addToWorkspaces)))
        return _stored(ctx, result, with_text=True)

    @get("/documents", operation_id="v1ListDocuments", guards=[requires_scope("read")],
         opt={"error_shape": FolderError, **raises(NotFound)}, **COMMON)
    def list_documents(self, ctx: Context, request: Request, folder: FolderQuery = None, offset: Offset = 0,
                       limit: ListLimit = None) -> DocumentsAnswer | FolderAnswer:
        """Every folder with its documents; with `folder`, one page of that folder (as
        /documents/folder/{folder}). A default user sees only documents in their workspaces."""
        if folder is not None:
            return self._folder(ctx, request, folder, offset, limit or "100")
        items = [FolderOut(f.name, "folder", _documents_out(ctx, f.documents))
                 for f in docs.list_documents(ctx, request.user)]
        return DocumentsAnswer(LocalFiles("documents", "folder", items))

    @get("/documents/folder/{folder_name:str}", operation_id="v1ListFolder", guards=[requires_scope("read")],
         opt={"error_shape": FolderError, **raises(NotFound)}, **COMMON)
    def list_folder(self, ctx: Context, request: Request, folder_name: FolderPath, offset: Offset = 0,
                    limit: ListLimit = None) -> FolderAnswer:
        return self._folder(ctx, request, folder_name, offset, limit or "all")

    def _folder(self, ctx: Context, request: Request, folder: str, offset: int, limit: str) -> FolderAnswer:
        size = MAX_LISTING if limit == "all" else int(limit)
        page = docs.list_folder(ctx, request.user, folder, offset, size)
        return FolderAnswer(page.folder, _documents_out(ctx, page.documents), page.total,
                            offset + len(page.documents) < page.total, None)

    @get("/document/accepted-file-types", operation_id="v1AcceptedFileTypes", **COMMON)
    def accepted_types(self, ctx: Context) -> TypesAnswer:
        return TypesAnswer(ctx.content.accepted_file_types())

    @get("/document/metadata-schema", operation_id="v1MetadataSchema", **COMMON)
    def metadata_schema(self) -> SchemaAnswer:
        return SchemaAnswer({"url": "string | nullable", "title": "string", "docAuthor": "string | nullable",
                             "description": "string | nullable", "docSource": "string | nullable",
                             "chunkSource": "string | nullable", "published": "epoch timestamp in ms | nullable"})

    @get("/document/{doc_name:str}", operation_id="v1GetDocument", opt={"error_shape": DocumentError, **raises(NotFound)},
         **COMMON)
    def get_document(self, ctx: Context, request: Request,
                     doc_name: Annotated[str, Parameter(min_length=1, max_length=1000)]) -> DocumentAnswer:
        """A document by file name; a default user finds only documents in their workspaces."""
        row = docs.document_by_name(ctx, request.user, doc_name)
        return DocumentAnswer(_documents_out(ctx, [row])[0])

    @post("/document/create-folder", operation_id="v1CreateFolder", status_code=200, opt=SUCCESS_ERRORS, **COMMON)
    def create_folder(self, ctx: Context, request: Request, data: FolderBody) -> SuccessMessage:
        docs.create_folder(ctx, docs.CreateFolder(principal=request.user, correlation_id=request_id(request),
                                                name=data.name))
        return SuccessMessage(True, None)

    @delete("/document/remove-folder", operation_id="v1RemoveFolder", status_code=200,
            opt={**SUCCESS_ERRORS, **raises(NotFound)}, **COMMON)
    def remove_folder(self, ctx: Context, request: Request, data: FolderBody) -> SuccessMessage:
        """Removes the folder and its documents, unembedding them (404 when there is no such folder)."""
        docs.remove_folder(ctx, docs.RemoveFolder(principal=request.user, correlation_id=request_id(request),
                                                name=data.name))
        return SuccessMessage(True, "Folder removed successfully")

    @post("/document/move-files", operation_id="v1MoveFiles", status_code=200, opt={**SUCCESS_ERRORS, **raises(NotFound)},
          **COMMON)
    def move_files(self, ctx: Context, request: Request, data: MoveBody) -> SuccessMessage:
        moved, skipped = docs.move_files(ctx, docs.MoveFiles(principal=request.user, correlation_id=request_id(request),
                                                             moves=[(m.source, m.target) for m in data.files]))
        message = None if not skipped else f"{skipped}/{moved + skipped} files not moved. Unembed them from all workspaces."
        return SuccessMessage(True, message)


    @delete("/system/remove-documents", operation_id="v1RemoveDocuments", status_code=200, opt=SUCCESS_ERRORS,
            **COMMON)
    def remove_documents(self, ctx: Context, request: Request, data: RemoveBody) -> SuccessMessage:
        """Remove documents by docpath, with their vectors and every workspace link. Unknown
        docpaths are left out; an empty or unknown list is a success, as upstream."""
        docs.remove_documents(ctx, docs.RemoveDocuments(principal=request.user, correlation_id=request_id(request),
                                                      names=data.names))
        return SuccessMessage(True, "Documents removed successfully")
