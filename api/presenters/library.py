"""Workspaces, documents and search hits as AnythingLLM clients parse them (field names are
upstream's), and the error bodies of those route families."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from application.rows import (
    DocumentRow, DocumentUse, SettingValue, UserRow, WorkspaceDocumentRow, WorkspaceRow, ThreadRow,
)
from application.search import SearchHit

NO_USE = DocumentUse((), ())


# error bodies -------------------------------------------------------------------------------
class WorkspaceError(msgspec.Struct):
    """`{"workspace": null, "message": "..."}`: upstream's workspace create/update errors."""

    workspace: None
    message: str

    @classmethod
    def of(cls, message: str, status: int) -> WorkspaceError:
        return cls(None, message)


class MessageError(msgspec.Struct):
    """`{"message": "...", "error": "..."}`: the pin route's errors (upstream sends `message`)."""

    message: str
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> MessageError:
        return cls(message, message)


class SearchError(msgspec.Struct):
    """`{"results": [], "message": "..."}` as upstream, with `error` for clients that read it."""

    results: list[SearchHit]
    message: str
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> SearchError:
        return cls([], message, message)


class MembersError(msgspec.Struct):
    """`{"success": false, "error": "...", "users": []}`: manage-users' errors."""

    success: bool
    error: str
    users: list[MemberOut]

    @classmethod
    def of(cls, message: str, status: int) -> MembersError:
        return cls(False, message, [])


class UsersError(msgspec.Struct):
    """`{"users": [], "error": "..."}`: the workspace members listing's errors."""

    users: list[MemberOut]
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> UsersError:
        return cls([], message)


class DocumentsError(msgspec.Struct):
    """`{"success": false, "error": "...", "documents": []}`: upstream's upload errors."""

    success: bool
    error: str
    documents: list[DocumentOut]

    @classmethod
    def of(cls, message: str, status: int) -> DocumentsError:
        return cls(False, message, [])


class SuccessMessage(msgspec.Struct):
    """`{"success": bool, "message": ...}`: the folder, move and removal routes' answers and errors."""

    success: bool
    message: str | None

    @classmethod
    def of(cls, message: str, status: int) -> SuccessMessage:
        return cls(False, message)


class DocumentError(msgspec.Struct):
    """`{"document": null, "error": "..."}`: the single-document route's errors."""

    document: None
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> DocumentError:
        return cls(None, message)


class FolderError(msgspec.Struct):
    """A folder listing's error: an empty listing (no folder) with `error`."""

    folder: None
    documents: list[DocumentOut]
    totalCount: int
    hasMore: bool
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> FolderError:
        return cls(None, [], 0, False, message)


# workspaces ---------------------------------------------------------------------------------
class ThreadOut(msgspec.Struct):
    """A thread as the workspace routes list it (upstream selects these fields)."""

    user_id: int
    slug: str
    name: str


class WorkspaceDocumentOut(msgspec.Struct):
    """A workspace_documents row as upstream returns it: `metadata` is a JSON string."""

    id: int
    docId: str
    filename: str
    docpath: str
    workspaceId: int
    metadata: str
    pinned: bool
    watched: bool
    createdAt: str
    lastUpdatedAt: str


class WorkspaceOut(msgspec.Struct):
    """Upstream's workspace row: id, name, slug, vectorTag, the settings, createdAt/lastUpdatedAt;
    `documents` and `threads` where the route includes them."""

    id: int
    name: str
    slug: str
    vectorTag: str | None
    createdAt: str
    lastUpdatedAt: str
    openAiTemp: float | None
    openAiHistory: int
    openAiPrompt: str | None
    similarityThreshold: float
    chatProvider: str | None
    chatModel: str | None
    topN: int
    chatMode: str
    pfpFilename: str | None
    agentProvider: str | None
    agentModel: str | None
    queryRefusalResponse: str | None
    vectorSearchMode: str | None
    router_id: int | None
    documents: list[WorkspaceDocumentOut] | UnsetType = UNSET
    threads: list[ThreadOut] | UnsetType = UNSET


class WorkspaceAnswer(msgspec.Struct):
    workspace: WorkspaceOut
    message: str | None


class WorkspaceList(msgspec.Struct):
    workspaces: list[WorkspaceOut]


class WorkspaceFound(msgspec.Struct):
    """`workspace` is an array, as upstream: empty for a slug that is unknown or not visible."""

    workspace: list[WorkspaceOut]


class EmbedError(msgspec.Struct):
    docpath: str
    error: str


class EmbeddingsAnswer(msgspec.Struct):
    """The workspace with its documents; beyond upstream, what could not be embedded and why."""

    workspace: WorkspaceOut
    message: str | None
    failedToEmbed: list[str]
    errors: list[EmbedError]


class MessageAnswer(msgspec.Struct):
    message: str


class SearchAnswer(msgspec.Struct):
    results: list[SearchHit]
    message: str | UnsetType = UNSET


class MemberOut(msgspec.Struct):
    userId: int
    username: str
    role: str
    lastUpdatedAt: str


class UsersAnswer(msgspec.Struct):
    users: list[MemberOut]


class SuccessAnswer(msgspec.Struct):
    success: bool
    error: None


class MembersAnswer(msgspec.Struct):
    success: bool
    error: None
    users: list[MemberOut]


def workspace_out(row: WorkspaceRow, documents: list[WorkspaceDocumentRow] | None = None,
                  threads: list[ThreadRow] | None = None) -> WorkspaceOut:
    s = row.settings
    return WorkspaceOut(
        id=row.id, name=row.name, slug=row.slug, vectorTag=None, createdAt=row.created_at,
        lastUpdatedAt=row.updated_at, openAiTemp=_num(s.get("openAiTemp")), openAiHistory=int(s.get("openAiHistory") or 0),
        openAiPrompt=_str(s.get("openAiPrompt")), similarityThreshold=float(_num(s.get("similarityThreshold")) or 0.0),
        chatProvider=_str(s.get("chatProvider")), chatModel=_str(s.get("chatModel")), topN=int(s.get("topN") or 4),
        chatMode=str(s.get("chatMode") or "chat"), pfpFilename=_str(s.get("pfpFilename")),
        agentProvider=_str(s.get("agentProvider")), agentModel=_str(s.get("agentModel")),
        queryRefusalResponse=_str(s.get("queryRefusalResponse")), vectorSearchMode=_str(s.get("vectorSearchMode")),
        router_id=_int(s.get("router_id")),
        documents=UNSET if documents is None else [workspace_document_out(d) for d in documents],
        threads=UNSET if threads is None else [ThreadOut(t.user_id, t.slug, t.name) for t in threads],
    )


def _num(value: SettingValue) -> float | None:
    return None if value is None or isinstance(value, str) else float(value)


def _int(value: SettingValue) -> int | None:
    return None if value is None or isinstance(value, str) else int(value)


def _str(value: SettingValue) -> str | None:
    return None if value is None else str(value)


def document_metadata(document_id: str, metadata: dict[str, str], word_count: int | None,
                      token_count: int | None) -> dict[str, str | int | None]:
    """The document JSON without its text, as upstream keeps it in workspace_documents.metadata."""
    return {"id": document_id, **metadata, "wordCount": word_count, "token_count_estimate": token_count}


def workspace_document_out(d: WorkspaceDocumentRow) -> WorkspaceDocumentOut:
    meta = document_metadata(d.document_id, d.metadata, d.word_count, d.token_count)
    return WorkspaceDocumentOut(
        id=d.id, docId=d.doc_id, filename=d.filename or d.docpath.rsplit("/", 1)[-1], docpath=d.docpath,
        workspaceId=d.workspace_id, metadata=msgspec.json.encode(meta).decode(), pinned=d.pinned, watched=False,
        createdAt=d.created_at, lastUpdatedAt=d.updated_at)


def members_out(users: list[UserRow]) -> list[MemberOut]:
    return [MemberOut(u.id, u.username, u.role, u.updated_at) for u in users]


# documents ----------------------------------------------------------------------------------
class DocumentOut(msgspec.Struct):
    """Upstream's document entry: its metadata keys, location/name, counts and where it is used;
    `pageContent` on the upload routes that return the text."""

    id: str
    url: str | None
    title: str | None
    docAuthor: str | None
    description: str | None
    docSource: str | None
    chunkSource: str | None
    published: str | None
    wordCount: int
    token_count_estimate: int
    location: str
    name: str
    type: str
    cached: bool
    pinnedWorkspaces: list[int]
    watched: bool
    pageContent: str | UnsetType = UNSET


def document_out(d: DocumentRow, use: DocumentUse = NO_USE, text: str | None = None) -> DocumentOut:
    m = d.metadata
    return DocumentOut(
        id=d.document_id, url=m.get("url"), title=m.get("title"), docAuthor=m.get("docAuthor"),
        description=m.get("description"), docSource=m.get("docSource"), chunkSource=m.get("chunkSource"),
        published=m.get("published"), wordCount=d.word_count, token_count_estimate=d.token_count,
        location=d.docpath, name=d.filename, type="file", cached=bool(use.embedded_in),
        pinnedWorkspaces=list(use.pinned_in), watched=False, pageContent=UNSET if text is None else text)


class StoredAnswer(msgspec.Struct):
    """An upload's answer; beyond upstream, what could not be embedded into `addToWorkspaces`."""

    success: bool
    error: None
    documents: list[DocumentOut]
    failedToEmbed: list[str]
    embeddingErrors: list[str]


class FolderOut(msgspec.Struct):
    name: str
    type: str
    items: list[DocumentOut]


class LocalFiles(msgspec.Struct):
    name: str
    type: str
    items: list[FolderOut]


class DocumentsAnswer(msgspec.Struct):
    localFiles: LocalFiles


class FolderAnswer(msgspec.Struct):
    folder: str
    documents: list[DocumentOut]
    totalCount: int
    hasMore: bool
    error: None


class DocumentAnswer(msgspec.Struct):
    document: DocumentOut
