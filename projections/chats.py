"""Read model of chat history and threads: what prompts read as history and what the chat
listings and exports show. Partitioned by workspace, user, thread and session, with
`include` turned off by scoped resets (never by a broader one)."""

from __future__ import annotations

import msgspec

from application.rows import WorkspaceThreadRow  # library slice: threads_of
from domain.chats import Chat, HistoryReset
from domain.threads import Thread
from domain.workspaces import Workspace
from projections.base import SqlProjection, Tx, handles, iso
from projections.readmodel import ReadModelView

NO_THREAD, NO_SESSION = -1, ""  # the keys of "default thread" and "no session": indexable, never NULL
_json = msgspec.json.encode


class ChatsProjection(SqlProjection):
    name = "chats"
    tables = ["chats", "threads"]
    # Rebuild cost at 1M events (bench/event_log.py) is mostly index pages written per batch:
    # chats.aggregate_id is not UNIQUE (it is uuid5 of the id, the primary key, so it cannot repeat;
    # a unique index on random UUIDs dirtied a page per row), chats_embed holds embed chats only
    # (`embed_id = ?` implies NOT NULL, so the queries still use it), and chats_thread serves thread
    # deletions and thread history, which scanned the whole table without it. Views made before
    # keep their old indexes and get chats_thread; a rebuild into a new view gets these.
    schema = [
        """CREATE TABLE IF NOT EXISTS chats (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL, position BIGINT NOT NULL,
            workspace_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL, thread_key BIGINT NOT NULL, session_key TEXT NOT NULL,
            embed_id BIGINT, api_key_id BIGINT, prompt TEXT NOT NULL, reply TEXT NOT NULL, response TEXT NOT NULL,
            include INTEGER NOT NULL, status TEXT NOT NULL, feedback INTEGER, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS chats_partition ON chats"
        " (workspace_id, user_id, thread_key, session_key, include, position)",
        "CREATE INDEX IF NOT EXISTS chats_embed ON chats (embed_id, session_key) WHERE embed_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS chats_position ON chats (position)",
        # thread_key alone: with (thread_key, position), SQLite (no statistics) picked it over
        # chats_partition for scoped resets of the default thread and scanned most rows.
        "CREATE INDEX IF NOT EXISTS chats_thread ON chats (thread_key)",
        """CREATE TABLE IF NOT EXISTS threads (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, workspace_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL, name TEXT NOT NULL,
            slug TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS threads_ws_user ON threads (workspace_id, user_id)",
    ]

    @handles(Chat.Recorded)
    def _recorded(self, tx: Tx, e: Chat.Recorded) -> None:
        # The reply is stored once, in `reply`; `response` holds the rest of upstream's response
        # object, and full_response() puts the text back in front (a third of each row's bytes).
        response = {
            "sources": e.sources, "type": e.mode, "attachments": e.attachments,
            "metrics": {"prompt_tokens": e.prompt_tokens, "completion_tokens": e.completion_tokens,
                        "total_tokens": e.prompt_tokens + e.completion_tokens, "duration": e.latency_ms / 1000,
                        "model": e.model},
            "status": e.status, "error": e.error,
        }
        at = iso(e.timestamp)
        tx.execute(
            "INSERT INTO chats (id, aggregate_id, position, workspace_id, user_id, thread_key, session_key, embed_id,"
            " api_key_id, prompt, reply, response, include, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.chat_id, str(e.originator_id), self.position, e.workspace_id, e.user_id, _thread(e.thread_id),
             _session(e.session_id), e.embed_id, e.actor_api_key_id, e.prompt, e.response, _json(response).decode(),
             int(e.include), e.status, at, at),
        )

    @handles(HistoryReset.Recorded)
    def _reset(self, tx: Tx, e: HistoryReset.Recorded) -> None:
        # `position < ?`: the same rows now or once a rebuild's copy is full (execute_later).
        if e.embed_id is not None:
            tx.execute_later("UPDATE chats SET include = 0 WHERE embed_id = ? AND session_key = ? AND position < ?",
                             (e.embed_id, _session(e.session_id), self.position))
            return
        tx.execute_later(
            "UPDATE chats SET include = 0 WHERE workspace_id = ? AND user_id = ? AND thread_key = ?"
            " AND session_key = ? AND embed_id IS NULL AND position < ?",
            (e.workspace_id, e.user_id, _thread(e.thread_id), _session(e.session_id), self.position),
        )

    @handles(Thread.Created)
    def _thread(self, tx: Tx, e: Thread.Created) -> None:
        tx.execute("INSERT INTO threads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (e.thread_id, str(e.originator_id), e.workspace_id, e.user_id, e.name, e.slug, iso(e.timestamp), iso(e.timestamp)))

    @handles(Thread.Renamed)
    def _renamed(self, tx: Tx, e: Thread.Renamed) -> None:
        # No handler reads a name; renames run in order (later ones last) whenever they run.
        tx.execute_later("UPDATE threads SET name = ?, updated_at = ? WHERE aggregate_id = ?",
                         (e.name, iso(e.timestamp), str(e.originator_id)))

    @handles(Thread.Deleted)
    def _deleted(self, tx: Tx, e: Thread.Deleted) -> None:
        thread_id = tx.scalar("SELECT id FROM threads WHERE aggregate_id = ?", (str(e.originator_id),))
        tx.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
        tx.execute_later("DELETE FROM chats WHERE thread_key = ? AND position < ?", (thread_id, self.position))


    @handles(Workspace.Deleted)
    def _workspace_deleted(self, tx: Tx, e: Workspace.Deleted) -> None:
        tx.execute_later("DELETE FROM chats WHERE workspace_id = ? AND position < ?", (e.workspace_id, self.position))
        tx.execute("DELETE FROM threads WHERE workspace_id = ?", (e.workspace_id,))


def _thread(thread_id: int | None) -> int:
    return NO_THREAD if thread_id is None else thread_id


def _session(session_id: str | None) -> str:
    return NO_SESSION if session_id is None else session_id



_TEXT_FIRST = b'{"text":'


def full_response(row: dict[str, object]) -> str:
    """Upstream's response JSON of a chats row (`reply` and `response` selected): the stored
    object with the reply as its first member, byte for byte what one encode would give.
    Rows written before the reply was split out already hold it."""
    rest = str(row["response"])
    if rest.startswith('{"text":'):
        return rest
    return (_TEXT_FIRST + _json(row["reply"]) + b"," + rest[1:].encode()).decode()


class ChatHistory(ReadModelView):
    """Queries on chat exchanges, threads and history resets."""

    # library slice: the threads the workspace routes list (application.ports.ChatsView) ------
    def threads_of(self, workspace_id: int, user_id: int) -> list[WorkspaceThreadRow]:
        """The user's threads in the workspace, by id. A listing only (nothing is authorised by
        it), so a stalled chats view still answers, as it stood."""
        with self._read(stale_ok=True) as tx:
            rows = tx.all("SELECT id, workspace_id, user_id, name, slug, created_at, updated_at FROM threads"
                          " WHERE workspace_id = ? AND user_id = ? ORDER BY id", (workspace_id, user_id))
        return [msgspec.convert(r, WorkspaceThreadRow) for r in rows]
    # end of the library slice's block ----------------------------------------------------------
