"""Read model of chat history and threads: what prompts read as history and what the chat
listings and exports show. Partitioned by workspace, user, thread and session, with
`include` turned off by scoped resets (never by a broader one)."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from application.rows import ChatLogRow, EmbedChat, HistoryRow, ThreadRow
from domain.chats import Chat, HistoryReset
from domain.sealed import ERASED
from domain.threads import Thread
from domain.users import User
from domain.workspaces import Workspace
from projections.base import SqlProjection, Tx, handles, iso
from projections.readmodel import ReadModelView

HISTORY_PAGE = 32  # the first page of a prompt's history; each next one is 4 times larger
_NO_POSITION = 1 << 62  # above every log position
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
            slug TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS threads_ws_user ON threads (workspace_id, user_id)",
        # Slugs are unique per workspace (a view made before had them unique everywhere: rebuild it).
        "CREATE UNIQUE INDEX IF NOT EXISTS threads_ws_slug ON threads (workspace_id, slug)",
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


    @handles(User.Erased)
    def _erased(self, tx: Tx, e: User.Erased) -> None:
        # The user's key is gone: events read from now on give ERASED (domain/sealed.py); the
        # rows written before hold plaintext, so they are overwritten the same way (a rebuild
        # overwrites its rows too, so both end alike). Sources and attachment names are emptied
        # in the stored response; an old row that holds the reply in it gets ERASED there too.
        if tx.postgres:
            response = ("(CASE WHEN (response::jsonb -> 'text') IS NULL THEN response::jsonb"
                        " ELSE jsonb_set(response::jsonb, '{text}', to_jsonb(?::text)) END"
                        " || jsonb_build_object('sources', '[]'::jsonb, 'attachments', '[]'::jsonb))::text")
        else:
            response = ("json_replace(json_set(response, '$.sources', json('[]'), '$.attachments', json('[]')),"
                        " '$.text', ?)")
        tx.execute_later(f"UPDATE chats SET prompt = ?, reply = ?, response = {response}"
                         " WHERE user_id = ? AND position < ?", (ERASED, ERASED, ERASED, e.user_id, self.position))

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

    # library slice: the threads the workspace routes list (application.views.ChatsView) ------
    def threads_of(self, workspace_id: int, user_id: int) -> list[ThreadRow]:
        """The user's threads in the workspace, by id. A listing only (nothing is authorised by
        it), so a stalled chats view still answers, as it stood."""
        with self._read(stale_ok=True) as tx:
            rows = tx.all("SELECT id, workspace_id, user_id, name, slug, created_at, updated_at FROM threads"
                          " WHERE workspace_id = ? AND user_id = ? ORDER BY id", (workspace_id, user_id))
        return [msgspec.convert(r, ThreadRow) for r in rows]
    # end of the library slice's block ----------------------------------------------------------

    _HISTORY = "SELECT id, prompt, reply, response, feedback, created_at FROM chats"
    _THREAD = "SELECT id, workspace_id, user_id, name, slug, created_at, updated_at FROM threads"

    # what prompts read as history
    def prompt_history(self, workspace_id: int, user_id: int, thread_id: int | None, session_id: str | None,
                       limit: int) -> Iterator[tuple[str, str]]:
        """The partition's included exchanges, newest first, at most `limit`, read a page at a
        time as the caller takes them: fitting a window stops after the newest few, so a long
        history is not read to the end on every chat."""
        return self._newest_first(
            "workspace_id = ? AND user_id = ? AND thread_key = ? AND session_key = ? AND include = 1"
            " AND embed_id IS NULL", (workspace_id, user_id, _thread(thread_id), _session(session_id)), limit)

    def embed_prompt_history(self, embed_id: int, session_id: str | None, limit: int) -> Iterator[tuple[str, str]]:
        return self._newest_first("embed_id = ? AND session_key = ? AND include = 1",
                                  (embed_id, _session(session_id)), limit)

    def _newest_first(self, where: str, params: tuple[object, ...], limit: int) -> Iterator[tuple[str, str]]:
        before, page = _NO_POSITION, HISTORY_PAGE
        while limit > 0:
            size = min(page, limit)
            with self._read() as tx:  # one short read per page; nothing is held between pages
                rows = tx.all(f"SELECT position, prompt, reply FROM chats WHERE {where} AND position < ?"
                              " ORDER BY position DESC LIMIT ?", (*params, before, size))
            yield from ((r["prompt"], r["reply"]) for r in rows)
            if len(rows) < size:
                return
            limit -= size
            before, page = rows[-1]["position"], page * 4

    # what the history routes show
    def history(self, workspace_id: int, user_id: int, session_id: str | None, limit: int,
                newest_first: bool = False) -> list[HistoryRow]:
        """The newest `limit` included exchanges of the user's default thread (or one API session)."""
        with self._read() as tx:
            rows = tx.all(self._HISTORY + " WHERE workspace_id = ? AND user_id = ? AND thread_key = ? AND session_key = ?"
                          " AND include = 1 AND embed_id IS NULL ORDER BY position DESC LIMIT ?",
                          (workspace_id, user_id, NO_THREAD, _session(session_id), limit))
        rows = [_history_row(r) for r in rows]
        return rows if newest_first else rows[::-1]

    def thread_history(self, thread_id: int) -> list[HistoryRow]:
        with self._read() as tx:
            rows = tx.all(self._HISTORY + " WHERE thread_key = ? AND include = 1 ORDER BY position", (thread_id,))
        return [_history_row(r) for r in rows]

    def embed_history(self, embed_id: int, session_id: str) -> list[HistoryRow]:
        with self._read() as tx:
            rows = tx.all(self._HISTORY + " WHERE embed_id = ? AND session_key = ? AND include = 1 ORDER BY position",
                          (embed_id, session_id))
        return [_history_row(r) for r in rows]

    # embeds
    def embed_chats(self, embed_id: int, session_id: str | None, limit: int) -> list[EmbedChat]:
        """An embed's chats (or one session's), newest first."""
        sql = ("SELECT id, prompt, reply, response, session_key, include, created_at FROM chats WHERE embed_id = ?"
               + (" AND session_key = ?" if session_id is not None else "") + " ORDER BY position DESC LIMIT ?")
        params = (embed_id, session_id, limit) if session_id is not None else (embed_id, limit)
        with self._read() as tx:
            rows = tx.all(sql, params)
        return [EmbedChat(r["id"], r["prompt"], full_response(r), r["session_key"], bool(r["include"]), embed_id,
                          r["created_at"]) for r in rows]

    def embed_chat_counts(self) -> dict[int, int]:
        with self._read() as tx:
            return {r["embed_id"]: int(r["n"]) for r in tx.all(
                "SELECT embed_id, COUNT(*) AS n FROM chats WHERE embed_id IS NOT NULL GROUP BY embed_id")}

    def embed_session_count(self, embed_id: int, session_id: str) -> int:
        with self._read() as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM chats WHERE embed_id = ? AND session_key = ?",
                                 (embed_id, session_id)) or 0)

    def embed_count_since(self, embed_id: int, since: str) -> int:
        with self._read() as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM chats WHERE embed_id = ? AND created_at >= ?",
                                 (embed_id, since)) or 0)

    # threads
    def thread(self, workspace_id: int, slug: str) -> ThreadRow | None:
        with self._read() as tx:
            row = tx.one(self._THREAD + " WHERE workspace_id = ? AND slug = ?", (workspace_id, slug))
        return ThreadRow(**row) if row else None

    # chat logs (admins)
    _LOG = ("SELECT id, position, workspace_id, user_id, thread_key, session_key, embed_id, api_key_id, prompt,"
            " reply, response, include, feedback, created_at FROM chats")

    def chat_log(self, offset: int, limit: int) -> list[ChatLogRow]:
        """Every exchange, newest first."""
        with self._read() as tx:
            rows = tx.all(self._LOG + " ORDER BY position DESC LIMIT ? OFFSET ?", (limit, offset))
        return [_log_row(r) for r in rows]

    def chat_log_after(self, position: int, since: str | None, limit: int) -> list[ChatLogRow]:
        """Exchanges recorded after log `position` (and sent at or after `since`, when given),
        oldest first: the pages of an export an archive follows by cursor."""
        with self._read() as tx:
            rows = tx.all(self._LOG + " WHERE position > ? AND created_at >= ? ORDER BY position LIMIT ?",
                          (position, since or "", limit))
        return [_log_row(r) for r in rows]

    def chat_position(self, chat_id: int) -> int | None:
        """Where chat `chat_id` stands in the log (None once it is gone)."""
        with self._read() as tx:
            row = tx.one("SELECT position FROM chats WHERE id = ?", (chat_id,))
        return None if row is None else int(row["position"])


def _log_row(r: dict[str, object]) -> ChatLogRow:
    return ChatLogRow(
        r["id"], r["workspace_id"], r["user_id"], None if r["thread_key"] == NO_THREAD else r["thread_key"],
        r["session_key"] or None, r["embed_id"], r["api_key_id"], r["prompt"], r["reply"], full_response(r),
        bool(r["include"]), r["feedback"], r["created_at"], r["position"])  # type: ignore[arg-type]


def _history_row(r: dict[str, object]) -> HistoryRow:
    return HistoryRow(r["id"], r["prompt"], full_response(r), r["feedback"], r["created_at"])  # type: ignore[arg-type]
