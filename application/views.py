"""The read models the use cases read, as Protocols: each lists the typed query methods a use
case may call; the implementations live beside their tables in `projections/`, and
`api/wiring.py` puts them into the `Context`. Query methods return the Structs in
`application.rows` (or plain values), never cursors or dicts, so no SQL lives in `application/`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # row Structs, for annotations only
    import numpy

    import application.audit  # noqa: F401
    import application.event_feed  # noqa: F401
    import application.rows  # noqa: F401


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

    def webhooks(self, include_removed: bool = False) -> list[application.rows.WebhookRow]:
        """Registered webhooks, by id."""

    def webhook(self, webhook_id: int) -> application.rows.WebhookRow | None:
        """The webhook with this id, a removed one too."""


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
    def threads_of(self, workspace_id: int, user_id: int) -> list[application.rows.ThreadRow]:
        """The user's threads in the workspace, by id."""
    # end of the library slice's block ----------------------------------------------------------

    def prompt_history(self, workspace_id: int, user_id: int, thread_id: int | None, session_id: str | None,
                       limit: int) -> Iterator[tuple[str, str]]:
        """(prompt, reply) of at most `limit` included exchanges of exactly this partition,
        newest first, read lazily as the caller goes back in time."""

    def embed_prompt_history(self, embed_id: int, session_id: str | None, limit: int) -> Iterator[tuple[str, str]]:
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

    def chat_log(self, offset: int, limit: int) -> list[application.rows.ChatLogRow]:
        """Every exchange, newest first (admin chat logs)."""

    def chat_log_after(self, position: int, since: str | None, limit: int) -> list[application.rows.ChatLogRow]:
        """Exchanges after log `position` sent at or after `since` (upstream's time text), oldest first."""

    def chat_position(self, chat_id: int) -> int | None:
        """Chat `chat_id`'s log position, None when it is not (or no longer) in the log."""


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
