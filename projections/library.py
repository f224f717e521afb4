"""Read model of workspaces (settings, members, linked documents), folders, documents, embeds."""

from __future__ import annotations

import json

import msgspec

from domain.documents import Document, Folder
from domain.embeds import Embed
from domain.workspaces import Workspace
from projections.base import SqlProjection, Tx, handles, iso
from projections.readmodel import ReadModelView

_json = msgspec.json.encode


def _dumps(value: object) -> str:
    return _json(value).decode()


class LibraryProjection(SqlProjection):
    name = "library"
    tables = ["workspaces", "workspace_members", "workspace_documents", "folders", "documents", "embeds"]
    handler_indexes = frozenset({"workspace_documents_ws"})  # documents removed, pinned
    schema = [
        """CREATE TABLE IF NOT EXISTS workspaces (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
            slug TEXT NOT NULL UNIQUE, settings TEXT NOT NULL, created_by BIGINT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS workspace_members (
            workspace_id BIGINT NOT NULL, user_id BIGINT NOT NULL, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, PRIMARY KEY (workspace_id, user_id))""",
        """CREATE TABLE IF NOT EXISTS workspace_documents (
            id BIGINT PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, workspace_id BIGINT NOT NULL,
            docpath TEXT NOT NULL, document_id TEXT NOT NULL, pinned INTEGER NOT NULL DEFAULT 0,
            chunks INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS workspace_documents_ws ON workspace_documents (workspace_id, docpath)",
        "CREATE TABLE IF NOT EXISTS folders (name TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS documents (
            document_id TEXT PRIMARY KEY, folder TEXT NOT NULL, filename TEXT NOT NULL,
            original_name TEXT NOT NULL, source TEXT NOT NULL, mime TEXT NOT NULL,
            content_hash TEXT NOT NULL, text_hash TEXT NOT NULL, size BIGINT NOT NULL,
            word_count BIGINT NOT NULL, token_count BIGINT NOT NULL, metadata TEXT NOT NULL,
            created_by BIGINT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS documents_path ON documents (folder, filename)",
        """CREATE TABLE IF NOT EXISTS embeds (
            id BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL UNIQUE, uuid TEXT NOT NULL UNIQUE,
            workspace_id BIGINT NOT NULL, settings TEXT NOT NULL, created_by BIGINT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    ]

    # workspaces ----------------------------------------------------------------------------
    @handles(Workspace.Created)
    def _ws_created(self, tx: Tx, e: Workspace.Created) -> None:
        tx.execute(
            "INSERT INTO workspaces (id, aggregate_id, name, slug, settings, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (e.workspace_id, str(e.originator_id), e.name, e.slug, _dumps(e.settings), e.actor_user_id,
             iso(e.timestamp), iso(e.timestamp)),
        )

    def _ws_id(self, tx: Tx, e: Workspace.Event) -> int:
        return tx.scalar("SELECT id FROM workspaces WHERE aggregate_id = ?", (str(e.originator_id),))

    @handles(Workspace.Updated)
    def _ws_updated(self, tx: Tx, e: Workspace.Updated) -> None:
        row = tx.one("SELECT name, settings FROM workspaces WHERE aggregate_id = ?", (str(e.originator_id),))
        settings = {**json.loads(row["settings"]), **e.changes}
        tx.execute("UPDATE workspaces SET name = ?, settings = ?, updated_at = ? WHERE aggregate_id = ?",
                   (e.name or row["name"], _dumps(settings), iso(e.timestamp), str(e.originator_id)))

    @handles(Workspace.MembersChanged)
    def _members(self, tx: Tx, e: Workspace.MembersChanged) -> None:
        ws = self._ws_id(tx, e)
        for user_id in e.removed:
            tx.execute("DELETE FROM workspace_members WHERE workspace_id = ? AND user_id = ?", (ws, user_id))
        for user_id in e.added:
            tx.execute("INSERT INTO workspace_members VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (ws, user_id, iso(e.timestamp), iso(e.timestamp)))

    @handles(Workspace.DocumentsEmbedded)
    def _embedded(self, tx: Tx, e: Workspace.DocumentsEmbedded) -> None:
        ws = self._ws_id(tx, e)
        for index, doc in enumerate(e.documents):
            tx.execute(
                "INSERT INTO workspace_documents (id, doc_id, workspace_id, docpath, document_id, chunks,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.position * 10_000 + index, doc.doc_id, ws, doc.docpath, doc.document_id, doc.chunks,
                 iso(e.timestamp), iso(e.timestamp)),
            )

    @handles(Workspace.DocumentsRemoved)
    def _removed(self, tx: Tx, e: Workspace.DocumentsRemoved) -> None:
        ws = self._ws_id(tx, e)
        for path in e.docpaths:
            tx.execute("DELETE FROM workspace_documents WHERE workspace_id = ? AND docpath = ?", (ws, path))

    @handles(Workspace.DocumentPinned)
    def _pinned(self, tx: Tx, e: Workspace.DocumentPinned) -> None:
        tx.execute("UPDATE workspace_documents SET pinned = ?, updated_at = ? WHERE workspace_id = ? AND docpath = ?",
                   (int(e.pinned), iso(e.timestamp), self._ws_id(tx, e), e.docpath))

    @handles(Workspace.Deleted)
    def _ws_deleted(self, tx: Tx, e: Workspace.Deleted) -> None:
        ws = self._ws_id(tx, e)
        for table in ("workspace_members", "workspace_documents"):
            tx.execute(f"DELETE FROM {table} WHERE workspace_id = ?", (ws,))
        tx.execute("DELETE FROM workspaces WHERE id = ?", (ws,))

    # folders and documents -----------------------------------------------------------------
    @handles(Folder.Created, Folder.Restored)
    def _folder(self, tx: Tx, e: Folder.Created | Folder.Restored) -> None:
        tx.execute("INSERT INTO folders VALUES (?, ?) ON CONFLICT DO NOTHING", (e.name, iso(e.timestamp)))

    @handles(Folder.Removed)
    def _folder_removed(self, tx: Tx, e: Folder.Removed) -> None:
        tx.execute("DELETE FROM folders WHERE name = ?", (e.name,))

    @handles(Document.Uploaded)
    def _uploaded(self, tx: Tx, e: Document.Uploaded) -> None:
        tx.execute(
            "INSERT INTO documents (document_id, folder, filename, original_name, source, mime, content_hash,"
            " text_hash, size, word_count, token_count, metadata, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.document_id, e.folder, e.filename, e.original_name, e.source, e.mime, e.content_hash, e.text_hash,
             e.size, e.word_count, e.token_count, _dumps(e.metadata), e.actor_user_id, iso(e.timestamp),
             iso(e.timestamp)),
        )
        tx.execute("INSERT INTO folders VALUES (?, ?) ON CONFLICT DO NOTHING", (e.folder, iso(e.timestamp)))

    @handles(Document.Moved)
    def _moved(self, tx: Tx, e: Document.Moved) -> None:
        tx.execute("UPDATE documents SET folder = ?, updated_at = ? WHERE document_id = ?",
                   (e.folder, iso(e.timestamp), str(e.originator_id)))

    @handles(Document.Deleted)
    def _doc_deleted(self, tx: Tx, e: Document.Deleted) -> None:
        tx.execute("DELETE FROM documents WHERE document_id = ?", (str(e.originator_id),))

    # embeds --------------------------------------------------------------------------------
    @handles(Embed.Created)
    def _embed_created(self, tx: Tx, e: Embed.Created) -> None:
        tx.execute(
            "INSERT INTO embeds (id, aggregate_id, uuid, workspace_id, settings, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (e.embed_id, str(e.originator_id), e.uuid, e.workspace_id, _dumps(e.settings), e.actor_user_id,
             iso(e.timestamp), iso(e.timestamp)),
        )

    @handles(Embed.Updated)
    def _embed_updated(self, tx: Tx, e: Embed.Updated) -> None:
        row = tx.one("SELECT settings, workspace_id FROM embeds WHERE aggregate_id = ?", (str(e.originator_id),))
        tx.execute("UPDATE embeds SET settings = ?, workspace_id = ?, updated_at = ? WHERE aggregate_id = ?",
                   (_dumps({**json.loads(row["settings"]), **e.changes}), e.workspace_id or row["workspace_id"],
                    iso(e.timestamp), str(e.originator_id)))

    @handles(Embed.Deleted)
    def _embed_deleted(self, tx: Tx, e: Embed.Deleted) -> None:
        tx.execute("DELETE FROM embeds WHERE aggregate_id = ?", (str(e.originator_id),))


class Library(ReadModelView):
    """Queries on workspaces, members, folders, documents and embeds."""
