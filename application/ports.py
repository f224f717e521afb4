"""What the use cases need from outside, as Protocols. `infrastructure/` provides the service
adapters and `projections/` the read models; `api/wiring.py` fills every port in one place.

Read models are ports too: a use case reads only through a view's typed query methods, which
return the Structs in `application.rows`; no SQL lives in `application/`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypedDict

import msgspec

from domain.principal import Principal

if TYPE_CHECKING:  # row Structs, for annotations only
    import numpy

    import application.audit  # noqa: F401
    import application.event_feed  # noqa: F401
    import application.rows  # noqa: F401


# services -----------------------------------------------------------------------------------
class Clock(Protocol):
    """The time, so that expiry and windows can be tested without sleeping."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""


class CachedPrincipal(msgspec.Struct, frozen=True):
    principal: Principal
    expires_at: float | None  # unix time the key expires, None = never


class PrincipalCache(Protocol):
    """Key-hash -> principal lookups, shared by every process when Redis is configured."""

    async def get(self, secret_hash: str) -> CachedPrincipal | None: ...

    async def put(self, secret_hash: str, entry: CachedPrincipal, ttl: int) -> None: ...

    def drop(self, secret_hashes: Iterable[str]) -> None:
        """Forget these keys at once (called from worker threads after a revocation). Never
        raises: a drop that cannot reach a shared cache is kept and retried by `flush`."""

    def flush(self) -> None:
        """Retry drops that could not reach the shared cache; raise while some remain."""


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window resets


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> RateDecision: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password or no hash; spends the same time either way."""


class SessionTokens(Protocol):
    """Signed session tokens (JWT) for the internal, AnythingLLM-UI style routes."""

    def issue(self, user_id: int, username: str, token_version: int) -> str: ...

    def read(self, token: str) -> tuple[int, int] | None:
        """(user id, token version) of a valid, unexpired token, else None."""


class Embedder(Protocol):
    model_name: str
    dimensions: int

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: list[str], batch_size: int = 64) -> numpy.ndarray:
        """(n, dimensions) float32 numpy array, L2-normalised (inner product = cosine)."""

    def warm(self) -> Embedder:
        """Load the model now (seconds), so the first request does not wait for it; returns itself."""


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def chunk(self, text: str, size: int, overlap: int) -> list[str]: ...

    def truncate_middle(self, text: str, max_tokens: int) -> str: ...


class Blobs(Protocol):
    """Content-addressed bytes (document originals and extracted text)."""

    def put(self, data: bytes) -> str:
        """Store `data`; return its SHA-256 hex digest (its address)."""

    def get(self, digest: str) -> bytes: ...


class VectorIndex(Protocol):
    """This process's nearest-neighbour indexes, one per workspace, following the vectors view."""

    def search(self, workspace: str, query: numpy.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine score) of the `k` nearest chunks, best first."""

    def count(self, workspace: str | None = None) -> int: ...


class ParsedText(Protocol):
    """What a parser extracted from a file."""

    text: str
    title: str
    mime: str
    metadata: dict[str, str]


class FetchedLink(Protocol):
    url: str  # after redirects
    content_type: str
    data: bytes
    filename: str


class SecretStore(Protocol):
    """Provider secrets set through the API, kept outside the event log (a 0600 file)."""

    def get(self, key: str) -> str | None: ...

    def keys(self) -> set[str]: ...

    def update(self, values: dict[str, str]) -> None: ...


class Parse(Protocol):
    """Extract a file's text; ValueError for a file it cannot read."""

    def __call__(self, filename: str, data: bytes, content_type: str | None = None, /) -> ParsedText: ...


class Fetch(Protocol):
    """Get a link; ValueError for one it refuses or cannot get."""

    def __call__(self, url: str, /, *, headers: dict[str, str] | None = None) -> FetchedLink: ...


class ContentServices(msgspec.Struct):
    """The adapters the workspace, document and chat use cases need, built by the wiring.
    `parse` raises ValueError for a file it cannot read; `fetch` ValueError for a link it
    refuses or cannot get; `safe_filename` ValueError for a name it cannot make safe."""

    blobs: Blobs
    embedder: Embedder
    tokenizer: TokenCounter
    index: VectorIndex
    parse: Parse
    safe_filename: Callable[[str], str]
    fetch: Fetch
    accepted_file_types: Callable[[], dict[str, list[str]]]  # mime -> extensions
    secrets: SecretStore
    max_upload_bytes: int = 50 << 20


class ImageGenerator(Protocol):
    """The configured image provider. `generate` raises `application.images.ImageProviderError`."""

    configured: bool

    def generate(self, prompt: str, size: str | None, references: list[bytes]) -> bytes: ...


# chat completions ---------------------------------------------------------------------------
JsonObject = dict[str, object]
"""A JSON object as upstream's shapes carry it (a source, an attachment's metadata)."""
Part = JsonObject
"""A part of a message's content: `{"type": "text", "text": ...}` or `{"type": "image_url", ...}`."""


class Message(TypedDict):
    """One chat message as OpenAI-compatible providers take it."""

    role: str  # system, user or assistant
    content: str | list[Part]


class CompletionConfig(Protocol):
    """Which model to call and how (the adapter's own config, made by `CompletionConfigs`)."""

    @property
    def model(self) -> str: ...


class CompletionConfigs(Protocol):
    def __call__(self, *, model: str, api_base: str | None, api_key: str | None,
                 timeout: float) -> CompletionConfig: ...


class TokenUsage(Protocol):
    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


class CompletionReply(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def usage(self) -> TokenUsage: ...


class CompletionChunk(Protocol):
    """A piece of a streamed reply; the last has `done` and the usage."""

    @property
    def text(self) -> str: ...

    @property
    def done(self) -> bool: ...

    @property
    def usage(self) -> TokenUsage | None: ...


class Completions(Protocol):
    """The chat model. Both calls raise `application.llm.CompletionFailed` (its message never
    holds a key); `cancel` set (the client went away) stops the upstream call."""

    def complete(self, config: CompletionConfig, messages: list[Message], *,
                 temperature: float | None = None) -> CompletionReply: ...

    def stream(self, config: CompletionConfig, messages: list[Message], *, temperature: float | None = None,
               cancel: threading.Event | None = None) -> Iterator[CompletionChunk]: ...

    def warm(self) -> None:
        """Load the client library now, so the first chat does not wait for it."""


class LLMDefaults(msgspec.Struct, frozen=True):
    """The model settings from the environment (operators set these)."""

    model: str | None
    api_base: str | None
    api_key: str | None
    context_window: int
    timeout: float


# read models --------------------------------------------------------------------------------
# One Protocol per read model, each listing the typed query methods the use cases call; the
# implementations live beside their tables in `projections/`. Query methods return Structs
# from `application.rows` (or plain values), never cursors or dicts.
class ReadModel(Protocol):
    """Every view: `ensure(position)` returns once the view has applied the event at that
    store position (read-after-write for the command that wrote it)."""

    name: str

    def ensure(self, position: int | None) -> None: ...

    def check(self) -> None:
        """Raise (answered 503, naming the read model) while it is stalled at an event it cannot apply."""


# accounts: users, invites, sign-in tokens, system settings ----------------------------------
class AccountsView(ReadModel, Protocol):
    def stalled(self) -> bool:
        """True while the read model is stopped at an event it cannot apply: authentication then
        reads the User aggregates in the store instead (see `application.apikeys`)."""

    def user(self, user_id: int) -> application.rows.UserRow | None:
        """The user with this id, deleted ones too."""

    def user_named(self, username: str) -> application.rows.UserRow | None:
        """The user with this name that is not deleted."""

    def users(self, user_ids: Iterable[int]) -> dict[int, application.rows.UserRow]:
        """The users with these ids (deleted ones too), by id: one query for a whole page."""

    def active_users(self) -> list[application.rows.UserRow]:
        """Users not deleted, by id."""

    def user_id_of(self, aggregate_id: str) -> int | None:
        """The public id of the user aggregate `aggregate_id`."""

    def setting(self, label: str) -> str | None: ...

    def settings(self) -> dict[str, str | None]:
        """Every system setting, label -> value."""

    def is_multi_user(self) -> bool: ...

    def owner_id(self) -> int:
        """The owner admin made on first start."""

    def auth_token(self, token_hash: str) -> application.rows.AuthTokenRow | None: ...

    def user_id_named(self, username: str) -> int | None:
        """The id of the user with this name, a deleted one too (live ones first): the audit log outlives them."""

    def invite(self, invite_id: int) -> application.rows.InviteRow | None: ...

    def invite_by_code(self, code_hash: str) -> application.rows.InviteRow | None: ...

    def invites(self) -> list[application.rows.InviteRow]:
        """Every invite, by id."""


# api_keys: the key listing and the hash lookup -----------------------------------------------
class ApiKeysView(ReadModel, Protocol):
    def stalled(self) -> bool:
        """True while the read model is stopped at an event it cannot apply."""

    def key_id_by_hash(self, secret_hash: str) -> int | None:
        """The key id a secret hash names, even while stalled (a hash never changes its key)."""

    def key(self, key_id: int) -> application.rows.ApiKeyRow | None: ...

    def keys(self, user_id: int | None = None) -> list[application.rows.ApiKeyRow]:
        """Every key (revoked and expired ones too), or one user's, by id."""

    def by_hash(self, secret_hash: str) -> application.rows.KeyLookup | None: ...

    def hashes_of_user(self, user_id: int) -> list[str]:
        """The secret hashes of every key of the user (to drop them from caches)."""

    def hashes_of_key(self, aggregate_id: str) -> list[str]:
        """The secret hash of the key aggregate `aggregate_id` (none if unknown)."""


# library: workspaces, members, folders, documents, embeds ------------------------------------
class LibraryView(ReadModel, Protocol):
    def workspace(self, slug: str) -> application.rows.WorkspaceRow | None: ...

    def workspace_by_id(self, workspace_id: int) -> application.rows.WorkspaceRow | None: ...

    def workspaces(self, member: int | None = None) -> list[application.rows.WorkspaceRow]:
        """Every workspace by id, or only those the user `member` belongs to."""

    def member_ids(self, workspace_id: int) -> set[int]: ...

    def workspace_documents(self, workspace_id: int) -> list[application.rows.WorkspaceDocumentRow]: ...

    def count_workspace_documents(self, workspace_id: int) -> int: ...

    def workspaces_holding(self, docpaths: Iterable[str]) -> list[int]:
        """Ids of the workspaces any of these documents is embedded in."""

    def embeds(self, public_uuid: str | None = None) -> list[application.rows.EmbedRecord]:
        """Every embed (or the one with this public uuid), by id."""

    def embed_uuids(self, workspace_id: int) -> list[str]: ...

    def document(self, document_id: str) -> application.rows.DocumentRow | None: ...

    def document_at(self, folder: str, filename: str) -> application.rows.DocumentRow | None: ...

    def documents(self, document_ids: Iterable[str]) -> dict[str, application.rows.DocumentRow]: ...

    def document_named(self, filename: str, member: int | None = None) -> application.rows.DocumentRow | None:
        """The oldest document with this file name, among those `member` may see (None: all)."""

    def folders(self, member: int | None = None) -> list[str]: ...

    def folder_exists(self, name: str) -> bool: ...

    def folder_documents(self, folder: str, offset: int = 0, limit: int | None = None,
                         member: int | None = None) -> list[application.rows.DocumentRow]: ...

    def count_folder(self, folder: str, member: int | None = None) -> int: ...

    def document_uses(self, docpaths: Iterable[str]) -> dict[str, application.rows.DocumentUse]: ...


# vectors: chunks and the embedding cache -----------------------------------------------------
class VectorsView(ReadModel, Protocol):
    def missing_embeddings(self, model: str, hashes: list[str]) -> list[str]: ...

    def put_embeddings(self, model: str, pairs: list[tuple[str, numpy.ndarray]]) -> None: ...

    def cached_vector(self, model: str, text_hash: str) -> numpy.ndarray | None: ...

    def chunks(self, ids: list[int]) -> dict[int, application.rows.ChunkRow]: ...


# chats: exchanges, threads, history resets ---------------------------------------------------
class ChatsView(ReadModel, Protocol):
    # library slice: the threads the workspace routes list ------------------------------------
    def threads_of(self, workspace_id: int, user_id: int) -> list[application.rows.WorkspaceThreadRow]:
        """The user's threads in the workspace, by id."""
    # end of the library slice's block ----------------------------------------------------------

    def prompt_history(self, workspace_id: int, user_id: int, thread_id: int | None, session_id: str | None,
                       limit: int) -> list[tuple[str, str]]:
        """(prompt, reply) of the newest `limit` included exchanges of exactly this partition, oldest first."""

    def embed_prompt_history(self, embed_id: int, session_id: str | None, limit: int) -> list[tuple[str, str]]:
        """The same for one embed session."""

    def history(self, workspace_id: int, user_id: int, session_id: str | None, limit: int,
                newest_first: bool = False) -> list[application.rows.HistoryRow]:
        """The newest `limit` included exchanges of the user's default thread (or one API session)."""

    def thread_history(self, thread_id: int) -> list[application.rows.HistoryRow]:
        """A thread's included exchanges, oldest first."""

    def embed_history(self, embed_id: int, session_id: str) -> list[application.rows.HistoryRow]:
        """An embed session's included exchanges, oldest first."""

    def embed_chats(self, embed_id: int, session_id: str | None, limit: int) -> list[application.rows.EmbedChat]:
        """An embed's chats (or one session's), newest first."""

    def embed_chat_counts(self) -> dict[int, int]:
        """Chats per embed id."""

    def embed_session_count(self, embed_id: int, session_id: str) -> int:
        """Chats recorded in one embed session."""

    def embed_count_since(self, embed_id: int, since: str) -> int:
        """Chats of an embed recorded at or after `since` (an ISO time)."""

    def thread(self, workspace_id: int, slug: str) -> application.rows.ThreadRow | None:
        """The workspace's thread with this slug."""

    def user_threads(self, workspace_id: int, user_id: int) -> list[application.rows.ThreadRow]:
        """A user's threads in a workspace, oldest first."""

    def chat_log(self, offset: int, limit: int) -> list[application.rows.ChatLogRow]:
        """Every exchange, newest first (admin chat logs and exports)."""


# audit_log: one row per event ----------------------------------------------------------------
class AuditView(ReadModel, Protocol):
    def catch_up(self) -> int:
        """Apply every event stored so far; the position reached."""

    def page(self, query: application.audit.AuditQuery) -> application.rows.AuditPage:
        """The events matching `query`, newest first, one page of them, and how many match."""


# the event store, read in position order (the event feed) ------------------------------------
class EventFeed(Protocol):
    def head(self) -> int:
        """The newest stored position (0 for an empty store)."""

    def read(self, after: int, limit: int, wants_topic: Callable[[str], bool]
             ) -> tuple[list[application.event_feed.EventRecord], int]:
        """The events at positions after `after`, scanning at most `limit` positions, oldest first,
        decoding only those whose stored topic `wants_topic` accepts; and the last position scanned
        (`after` when there was nothing)."""
