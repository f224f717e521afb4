"""The rows read models hand to use cases: frozen Structs, one per kind of record. The view
Protocols in `application.ports` return these; `projections/` builds them from its tables and
`api/presenters` turns them into upstream's JSON shapes."""

from __future__ import annotations

import msgspec


# accounts ------------------------------------------------------------------------------------
class UserRow(msgspec.Struct, frozen=True):
    id: int
    username: str
    role: str
    suspended: bool
    deleted: bool
    token_version: int
    daily_message_limit: int | None
    bio: str | None
    pfp_filename: str | None
    created_at: str
    updated_at: str


class AuthTokenRow(msgspec.Struct, frozen=True):
    """A single-use sign-in token (`/v1/users/{id}/issue-auth-token`), by its hash."""

    user_id: int
    expires_at: str
    used: bool


class UserRef(msgspec.Struct, frozen=True):
    """Who made or claimed an invite: the id, and the name while the user exists."""

    id: int
    username: str | None


class InviteRow(msgspec.Struct, frozen=True):
    """An invite as listed: never the code, only its display prefix."""

    id: int
    display_prefix: str
    status: str  # pending, claimed, disabled
    claimed_by: UserRef | None
    workspace_ids: tuple[int, ...]
    created_by: UserRef | None
    created_at: str
    updated_at: str


# api_keys ------------------------------------------------------------------------------------
class ApiKeyRow(msgspec.Struct, frozen=True):
    """An API key as listed: never the secret, only its display prefix."""

    id: int
    name: str | None
    display_prefix: str
    user_id: int
    scopes: tuple[str, ...]
    expires_at: str | None
    rate_limit: int | None
    created_by: int
    created_at: str
    updated_at: str
    revoked_at: str | None
    expired: bool

    def active_at(self, now: str) -> bool:
        """Neither revoked nor expired at `now` (an ISO time, as `domain.timefmt.iso` makes)."""
        return self.revoked_at is None and not self.expired and not (self.expires_at and self.expires_at <= now)


class KeyLookup(msgspec.Struct, frozen=True):
    """What authentication needs of the key behind a presented secret's hash."""

    id: int
    user_id: int
    scopes: tuple[str, ...]
    expires_at: str | None
    rate_limit: int | None
    revoked: bool


# webhooks (in the accounts read model; delivery state beside the store) ---------------------
class WebhookRow(msgspec.Struct, frozen=True):
    """A registered webhook: never its secret. `start` is the position it was added at: it is
    sent the events after it."""

    id: int
    url: str
    types: tuple[str, ...]
    created_by: int
    created_by_key: int | None
    created_at: str
    start: int
    removed_at: str | None


class DeliveryState(msgspec.Struct, frozen=True):
    """Where a webhook's deliveries stand: `position` the last event it took (or passed over)."""

    webhook_id: int
    position: int
    failures: int
    parked: bool
    next_attempt_at: float  # epoch seconds
    last_error: str | None
    delivered: int


# library -------------------------------------------------------------------------------------
SettingValue = str | int | float | None  # a workspace setting (upstream's writable fields)


class WorkspaceRow(msgspec.Struct, frozen=True):
    """A workspace: its public id, slug and settings (upstream's writable fields, by their names)."""

    id: int
    aggregate_id: str
    name: str
    slug: str
    settings: dict[str, SettingValue]
    created_at: str
    updated_at: str


class DocumentRow(msgspec.Struct, frozen=True):
    """A stored document: where it sits (folder/filename), its counts and upstream's metadata keys."""

    document_id: str
    folder: str
    filename: str
    original_name: str
    source: str
    mime: str
    text_hash: str
    word_count: int
    token_count: int
    metadata: dict[str, str]
    created_at: str

    @property
    def docpath(self) -> str:
        return f"{self.folder}/{self.filename}"


class WorkspaceDocumentRow(msgspec.Struct, frozen=True):
    """A document embedded in a workspace (upstream's workspace_documents row) with the document's
    metadata and counts, which upstream keeps as a JSON string on that row."""

    id: int
    doc_id: str
    workspace_id: int
    docpath: str
    document_id: str
    pinned: bool
    chunks: int
    created_at: str
    updated_at: str
    filename: str | None
    metadata: dict[str, str]
    word_count: int | None
    token_count: int | None


class DocumentUse(msgspec.Struct, frozen=True):
    """Where a document is used: the workspaces it is embedded in, and those that pin it."""

    embedded_in: tuple[int, ...]
    pinned_in: tuple[int, ...]


# vectors -------------------------------------------------------------------------------------
class ChunkRow(msgspec.Struct, frozen=True):
    """One embedded chunk of a document in a workspace (`workspace` is its aggregate id)."""

    id: int
    vector_id: str
    workspace: str
    doc_id: str
    docpath: str
    document_id: str
    chunk_index: int
    text: str


# chats ---------------------------------------------------------------------------------------
class ThreadRow(msgspec.Struct, frozen=True):
    """A thread (upstream's workspace_threads row), as the thread and workspace routes show it."""

    id: int
    workspace_id: int
    user_id: int
    name: str
    slug: str
    created_at: str
    updated_at: str


class HistoryRow(msgspec.Struct, frozen=True):
    """One exchange as the history routes show it; `response` is upstream's full response JSON."""

    id: int
    prompt: str
    response: str
    feedback: int | None
    created_at: str


class EmbedChat(msgspec.Struct, frozen=True):
    id: int
    prompt: str
    response: str
    session_id: str
    include: bool
    embed_id: int
    created_at: str


class ChatLogRow(msgspec.Struct, frozen=True):
    """One exchange of the chat logs (admins): every partition key, the reply and the full response."""

    id: int
    workspace_id: int
    user_id: int
    thread_id: int | None
    session_id: str | None
    embed_id: int | None
    api_key_id: int | None
    prompt: str
    reply: str
    response: str
    include: bool
    feedback: int | None
    created_at: str
    position: int  # in the event log: the chat log's order and an export's cursor


# audit_log -----------------------------------------------------------------------------------
class AuditRow(msgspec.Struct, frozen=True):
    """One stored event as the audit log shows it: who, with which key, in which request."""

    position: int
    time: str
    actor_user_id: int | None
    actor_api_key_id: int | None
    correlation_id: str | None
    type: str
    aggregate_id: str
    summary: str


class AuditPage(msgspec.Struct, frozen=True):
    events: list[AuditRow]
    total: int
    has_more: bool



class EmbedRecord(msgspec.Struct, frozen=True):
    """An embed as the library read model holds it, with its workspace's name and slug."""

    id: int
    uuid: str
    workspace_id: int
    workspace_name: str | None
    workspace_slug: str | None
    settings: dict[str, str | bool | int | list[str] | None]
    created_by: int
    created_at: str
