"""Read model of workspaces (settings, members, linked documents), folders, documents, embeds."""

from __future__ import annotations

import json
from collections.abc import Iterable

import msgspec

from application.rows import DocumentRow, DocumentUse, EmbedRecord, WorkspaceDocumentRow, WorkspaceRow
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

    # workspaces and members ------------------------------------------------------------------
    def workspace(self, slug: str) -> WorkspaceRow | None:
        with self._read() as tx:
            return _workspace(tx.one(_WS + " WHERE slug = ?", (slug,)))

    def workspace_by_id(self, workspace_id: int) -> WorkspaceRow | None:
        with self._read() as tx:
            return _workspace(tx.one(_WS + " WHERE id = ?", (workspace_id,)))

    def workspaces(self, member: int | None = None) -> list[WorkspaceRow]:
        """Every workspace by id, or only those `member` (a user id) belongs to."""
        with self._read() as tx:
            if member is None:
                rows = tx.all(_WS + " ORDER BY id")
            else:
                rows = tx.all(_WS + " WHERE id IN (SELECT workspace_id FROM workspace_members WHERE user_id = ?)"
                              " ORDER BY id", (member,))
        return [w for r in rows if (w := _workspace(r)) is not None]

    def member_ids(self, workspace_id: int) -> set[int]:
        with self._read() as tx:
            return {r["user_id"] for r in tx.all("SELECT user_id FROM workspace_members WHERE workspace_id = ?",
                                                 (workspace_id,))}

    def workspace_documents(self, workspace_id: int) -> list[WorkspaceDocumentRow]:
        """The documents embedded in the workspace, in the order they were added."""
        with self._read() as tx:
            rows = tx.all(
                "SELECT w.id, w.doc_id, w.workspace_id, w.docpath, w.document_id, w.pinned, w.chunks, w.created_at,"
                " w.updated_at, d.filename, d.metadata, d.word_count, d.token_count FROM workspace_documents w"
                " LEFT JOIN documents d ON d.document_id = w.document_id WHERE w.workspace_id = ? ORDER BY w.id",
                (workspace_id,))
        return [msgspec.convert({**r, "pinned": bool(r["pinned"]), "metadata": json.loads(r["metadata"] or "{}")},
                                WorkspaceDocumentRow) for r in rows]

    def count_workspace_documents(self, workspace_id: int) -> int:
        with self._read() as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM workspace_documents WHERE workspace_id = ?",
                                 (workspace_id,)) or 0)

    def workspaces_holding(self, docpaths: Iterable[str]) -> list[int]:
        """Ids of the workspaces any of these documents is embedded in."""
        paths = list(dict.fromkeys(docpaths))
        found: set[int] = set()
        with self._read() as tx:
            for start in range(0, len(paths), 500):
                part = paths[start:start + 500]
                found |= {r["workspace_id"] for r in tx.all(
                    f"SELECT workspace_id FROM workspace_documents WHERE docpath IN ({_marks(part)})", tuple(part))}
        return sorted(found)

    def embeds(self, public_uuid: str | None = None) -> list[EmbedRecord]:
        """Every embed (or the one with this public uuid), by id, with its workspace's name and slug."""
        where, params = ("WHERE e.uuid = ?", (public_uuid,)) if public_uuid is not None else ("", ())
        with self._read() as tx:
            rows = tx.all(
                "SELECT e.id, e.uuid, e.workspace_id, w.name AS workspace_name, w.slug AS workspace_slug, e.settings,"
                f" e.created_by, e.created_at FROM embeds e LEFT JOIN workspaces w ON w.id = e.workspace_id {where}"
                " ORDER BY e.id", params)
        return [msgspec.convert({**r, "settings": json.loads(str(r["settings"]))}, EmbedRecord) for r in rows]

    def embed_uuids(self, workspace_id: int) -> list[str]:
        with self._read() as tx:
            return [r["uuid"] for r in tx.all("SELECT uuid FROM embeds WHERE workspace_id = ?", (workspace_id,))]

    # folders and documents -------------------------------------------------------------------
    def document(self, document_id: str) -> DocumentRow | None:
        with self._read() as tx:
            return _document(tx.one(_DOC + " WHERE document_id = ?", (document_id,)))

    def document_at(self, folder: str, filename: str) -> DocumentRow | None:
        with self._read() as tx:
            return _document(tx.one(_DOC + " WHERE folder = ? AND filename = ?", (folder, filename)))

    def documents(self, document_ids: Iterable[str]) -> dict[str, DocumentRow]:
        ids = list(dict.fromkeys(document_ids))
        out: dict[str, DocumentRow] = {}
        with self._read() as tx:
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                for r in tx.all(_DOC + f" WHERE document_id IN ({_marks(part)})", tuple(part)):
                    out[r["document_id"]] = _document(r)  # type: ignore[assignment]
        return out

    def document_named(self, filename: str, member: int | None = None) -> DocumentRow | None:
        """The oldest document with this file name (only among those `member` may see)."""
        where, params = _visible(member)
        with self._read() as tx:
            return _document(tx.one(_DOC + f" WHERE filename = ?{where} ORDER BY created_at LIMIT 1",
                                    (filename, *params)))

    def folders(self, member: int | None = None) -> list[str]:
        """Folder names; for `member`, only the folders holding a document they may see."""
        with self._read() as tx:
            if member is None:
                return [r["name"] for r in tx.all("SELECT name FROM folders ORDER BY name")]
            where, params = _visible(member)
            return [r["folder"] for r in tx.all(f"SELECT DISTINCT folder FROM documents WHERE 1 = 1{where}"
                                                " ORDER BY folder", params)]

    def folder_exists(self, name: str) -> bool:
        with self._read() as tx:
            return tx.one("SELECT name FROM folders WHERE name = ?", (name,)) is not None

    def folder_documents(self, folder: str, offset: int = 0, limit: int | None = None,
                         member: int | None = None) -> list[DocumentRow]:
        where, params = _visible(member)
        sql = _DOC + f" WHERE folder = ?{where} ORDER BY created_at, filename"
        args: tuple[object, ...] = (folder, *params)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += (limit, offset)
        with self._read() as tx:
            return [d for r in tx.all(sql, args) if (d := _document(r)) is not None]

    def count_folder(self, folder: str, member: int | None = None) -> int:
        where, params = _visible(member)
        with self._read() as tx:
            return int(tx.scalar(f"SELECT COUNT(*) FROM documents WHERE folder = ?{where}", (folder, *params)) or 0)

    def document_uses(self, docpaths: Iterable[str]) -> dict[str, DocumentUse]:
        """For each docpath, the workspaces it is embedded in and those that pin it (by id)."""
        paths = list(dict.fromkeys(docpaths))
        embedded: dict[str, set[int]] = {p: set() for p in paths}
        pinned: dict[str, set[int]] = {p: set() for p in paths}
        with self._read() as tx:
            for start in range(0, len(paths), 500):
                part = paths[start:start + 500]
                for r in tx.all(f"SELECT docpath, workspace_id, pinned FROM workspace_documents"
                                f" WHERE docpath IN ({_marks(part)})", tuple(part)):
                    embedded[r["docpath"]].add(r["workspace_id"])
                    if r["pinned"]:
                        pinned[r["docpath"]].add(r["workspace_id"])
        return {p: DocumentUse(tuple(sorted(embedded[p])), tuple(sorted(pinned[p]))) for p in paths}


_WS = "SELECT id, aggregate_id, name, slug, settings, created_at, updated_at FROM workspaces"
_DOC = ("SELECT document_id, folder, filename, original_name, source, mime, text_hash, word_count, token_count,"
        " metadata, created_at FROM documents")


def _marks(values: list[str]) -> str:
    return ",".join("?" * len(values))


def _visible(member: int | None) -> tuple[str, tuple[object, ...]]:
    """The filter for documents embedded in a workspace `member` belongs to (None: every document)."""
    if member is None:
        return "", ()
    return (" AND document_id IN (SELECT d.document_id FROM workspace_documents d JOIN workspace_members m"
            " ON m.workspace_id = d.workspace_id WHERE m.user_id = ?)", (member,))


def _workspace(r: dict[str, object] | None) -> WorkspaceRow | None:
    if r is None:
        return None
    return msgspec.convert({**r, "settings": json.loads(str(r["settings"]))}, WorkspaceRow)


def _document(r: dict[str, object] | None) -> DocumentRow | None:
    if r is None:
        return None
    return msgspec.convert({**r, "metadata": json.loads(str(r["metadata"]))}, DocumentRow)
