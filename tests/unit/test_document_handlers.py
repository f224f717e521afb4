"""Document use cases on the in-memory store: given documents, folders and workspaces (made
through their handlers), when a document command, then the new events with the actor's ids
and correlation id (and never the text), or the error and no new events. Covers uploads of
each kind, folders, moves, and removal unembedding a document from every workspace."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import msgspec
import pytest

from application.documents import (
    CreateFolder, MoveFiles, RemoveDocuments, RemoveFolder, Unprocessable, UploadFile, UploadLink, UploadRawText,
    create_folder, document_by_path, list_documents, move_files, remove_documents, remove_folder, upload_file,
    upload_link, upload_raw_text,
)
from application.workspaces import CreateWorkspace, UpdateEmbeddings, create_workspace, update_embeddings
from domain.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from domain.principal import Principal
from tests.support.memory import head, kinds, memory_runtime, new_events, owner, stamps, user, with_key
from tests.support.web import http_server

TEXT = "Sea otters hold hands while they sleep so they do not drift apart."


def _raw(rt, title: str = "otters", text: str = TEXT, principal: Principal | None = None, cid: str = "given",
         workspaces: list[str] | None = None):
    return upload_raw_text(rt.ctx, UploadRawText(principal=principal or owner(rt), correlation_id=cid, text=text,
                                                 metadata={"title": title}, add_to_workspaces=workspaces or []))


def _workspace(rt, name: str = "Research"):
    return create_workspace(rt.ctx, CreateWorkspace(principal=owner(rt), correlation_id="given", name=name))


def _embed(rt, slug: str, docpath: str) -> None:
    update_embeddings(rt.ctx, UpdateEmbeddings(principal=owner(rt), correlation_id="given", slug=slug,
                                               adds=[docpath]))


def _stored_state(rt, events) -> bytes:
    return b"".join(msgspec.json.encode(rt.ctx.ledger.mapper.to_stored_event(e).state) for e in events)


# uploads ------------------------------------------------------------------------------------
def test_raw_text_records_the_folder_and_the_upload_with_the_actor_and_never_the_text(tmp_path):
    with memory_runtime(tmp_path) as rt:
        keyed = with_key(rt, owner(rt))
        before = head(rt)
        stored = _raw(rt, principal=keyed, cid="c1")
        events = new_events(rt, before)
        assert kinds(events) == ["Folder.Created", "Document.Uploaded"]
        assert stamps(events) == {(1, keyed.api_key_id, "c1")}
        assert TEXT.encode() not in _stored_state(rt, events)
        doc = stored.document
        assert (doc.folder, doc.source, doc.metadata["title"], stored.text) == ("custom-documents", "raw-text",
                                                                               "otters", TEXT)
        assert doc.metadata["published"] == "1/2/2026, 3:04:05 AM"  # the FakeClock's time
        before = head(rt)
        _raw(rt, "beavers", "Beavers build dams.", cid="c2")
        assert kinds(new_events(rt, before)) == ["Document.Uploaded"]  # the folder exists now


def test_raw_text_added_to_workspaces_is_embedded_and_unknown_ones_reported(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        before = head(rt)
        stored = _raw(rt, cid="c1", workspaces=[ws.slug, "nope"])
        events = new_events(rt, before)
        assert kinds(events) == ["Folder.Created", "Document.Uploaded", "Workspace.DocumentsEmbedded"]
        assert stamps(events) == {(1, None, "c1")}
        assert [f.error for f in stored.failures] == ["Workspace nope is not a valid workspace."]
        assert rt.ctx.content.index.count(ws.aggregate_id) == 1


@pytest.mark.parametrize("text, metadata, problem", [
    (None, {"title": "t"}, "'textContent'"),
    ("   ", {"title": "t"}, "'textContent'"),
    ("words", None, "'title'"),
    ("words", {"title": " "}, "'title'"),
    ("\x00\x00", {"title": "t"}, "no text content"),
])
def test_raw_text_without_text_or_title_is_refused_and_records_nothing(tmp_path, text, metadata, problem):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        with pytest.raises(Unprocessable, match=problem):
            upload_raw_text(rt.ctx, UploadRawText(principal=owner(rt), correlation_id="c1", text=text,
                                                  metadata=metadata))
        assert new_events(rt, before) == []


def test_a_default_user_or_a_read_only_key_cannot_upload(tmp_path):
    with memory_runtime(tmp_path) as rt:
        dana, reader = user(rt), with_key(rt, owner(rt), ("read",))
        before = head(rt)
        for principal in (dana, reader):
            with pytest.raises(PermissionDenied):
                _raw(rt, principal=principal)
            with pytest.raises(PermissionDenied):
                upload_file(rt.ctx, UploadFile(principal=principal, correlation_id="c1", filename="a.txt",
                                               data=b"words"))
            with pytest.raises(PermissionDenied):
                upload_link(rt.ctx, UploadLink(principal=principal, correlation_id="c2", link="http://example.com/"))
        assert new_events(rt, before) == []


def test_upload_file_parses_the_file_and_records_its_original_name(tmp_path):
    with memory_runtime(tmp_path) as rt:
        create_folder(rt.ctx, CreateFolder(principal=owner(rt), correlation_id="given", name="notes"))
        before = head(rt)
        stored = upload_file(rt.ctx, UploadFile(
            principal=owner(rt), correlation_id="c1", filename="lighthouse.txt", content_type="text/plain",
            data=b"Plain text about the amber lighthouse keeper.\n", folder="notes",
            metadata={"description": "a keeper", "docSource": "beats the default", "location": "ignored"}))
        events = new_events(rt, before)
        assert kinds(events) == ["Document.Uploaded"] and stamps(events) == {(1, None, "c1")}
        assert b"amber lighthouse" not in _stored_state(rt, events)
        doc = stored.document
        assert (doc.folder, doc.original_name, doc.source) == ("notes", "lighthouse.txt", "upload")
        assert (doc.metadata["description"], doc.metadata["docSource"]) == ("a keeper", "beats the default")
        assert "location" not in doc.metadata


def test_upload_file_refuses_an_oversized_or_unparseable_file(tmp_path):
    with memory_runtime(tmp_path, upload_max_bytes=64) as rt:
        before = head(rt)
        with pytest.raises(DomainError, match="upload limit"):
            upload_file(rt.ctx, UploadFile(principal=owner(rt), correlation_id="c1", filename="big.txt",
                                           data=b"x" * 65))
        with pytest.raises(Unprocessable):
            upload_file(rt.ctx, UploadFile(principal=owner(rt), correlation_id="c2", filename="tool.exe",
                                           data=b"MZ\x90\x00binary"))
        with pytest.raises(InvalidInput):
            upload_file(rt.ctx, UploadFile(principal=owner(rt), correlation_id="c3", filename="a.txt",
                                           data=b"words", folder="../up"))
        assert new_events(rt, before) == []


class _Page(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<html><head><title>Otter Facts</title></head><body><p>" + TEXT.encode() + b"</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def web() -> Iterator[str]:
    with http_server(_Page) as url:
        yield url


def test_upload_link_fetches_the_page_and_records_its_url(tmp_path, web):
    with memory_runtime(tmp_path, link_allowlist=frozenset({"127.0.0.1"})) as rt:
        before = head(rt)
        stored = upload_link(rt.ctx, UploadLink(principal=owner(rt), correlation_id="c1", link=f"{web}/otters"))
        events = new_events(rt, before)
        assert kinds(events) == ["Folder.Created", "Document.Uploaded"] and stamps(events) == {(1, None, "c1")}
        assert TEXT in stored.text and TEXT.encode() not in _stored_state(rt, events)
        assert (stored.document.source, stored.document.metadata["url"]) == ("link", f"{web}/otters")


def test_upload_link_to_a_private_address_is_refused_and_records_nothing(tmp_path, web):
    with memory_runtime(tmp_path) as rt:  # no allowlist: loopback is private
        before = head(rt)
        with pytest.raises(Unprocessable):
            upload_link(rt.ctx, UploadLink(principal=owner(rt), correlation_id="c1", link=f"{web}/otters"))
        with pytest.raises(Unprocessable):
            upload_link(rt.ctx, UploadLink(principal=owner(rt), correlation_id="c2", link="file:///etc/passwd"))
        assert new_events(rt, before) == []


# folders ------------------------------------------------------------------------------------
def test_create_folder_records_it_once(tmp_path):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        create_folder(rt.ctx, CreateFolder(principal=owner(rt), correlation_id="c1", name="reports"))
        events = new_events(rt, before)
        assert kinds(events) == ["Folder.Created"] and stamps(events) == {(1, None, "c1")}
        before = head(rt)
        with pytest.raises(Conflict):
            create_folder(rt.ctx, CreateFolder(principal=owner(rt), correlation_id="c2", name="reports"))
        with pytest.raises(InvalidInput):
            create_folder(rt.ctx, CreateFolder(principal=owner(rt), correlation_id="c3", name="a/b"))
        with pytest.raises(PermissionDenied):
            create_folder(rt.ctx, CreateFolder(principal=user(rt), correlation_id="c4", name="mine"))
        assert kinds(new_events(rt, before)) == ["UserDirectory.Entered", "User.Registered"]  # only the given user


def test_remove_folder_deletes_its_documents_and_unembeds_them(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        create_folder(rt.ctx, CreateFolder(principal=owner(rt), correlation_id="given", name="old"))
        doc = upload_file(rt.ctx, UploadFile(principal=owner(rt), correlation_id="given", filename="o.txt",
                                             data=TEXT.encode(), folder="old")).document
        _embed(rt, ws.slug, doc.docpath)
        before = head(rt)
        assert remove_folder(rt.ctx, RemoveFolder(principal=owner(rt), correlation_id="c1", name="old")) == 1
        events = new_events(rt, before)
        assert sorted(kinds(events)) == ["Document.Deleted", "Folder.Removed", "Workspace.DocumentsRemoved"]
        assert stamps(events) == {(1, None, "c1")}
        assert rt.ctx.library.workspace_documents(ws.id) == [] and rt.ctx.content.index.count(ws.aggregate_id) == 0
        assert "old" not in [f.name for f in list_documents(rt.ctx, owner(rt))]
        before = head(rt)
        with pytest.raises(NotFound):
            remove_folder(rt.ctx, RemoveFolder(principal=owner(rt), correlation_id="c2", name="old"))
        with pytest.raises(InvalidInput):
            remove_folder(rt.ctx, RemoveFolder(principal=owner(rt), correlation_id="c3", name="custom-documents"))
        assert new_events(rt, before) == []


# removal and moves --------------------------------------------------------------------------
def test_removing_a_document_unembeds_it_from_every_workspace(tmp_path):
    with memory_runtime(tmp_path) as rt:
        first, second = _workspace(rt), _workspace(rt, "Second")
        doc = _raw(rt, workspaces=[first.slug, second.slug]).document
        kept = _raw(rt, "beavers", "Beavers build dams.", workspaces=[first.slug]).document
        before = head(rt)
        removed = remove_documents(rt.ctx, RemoveDocuments(principal=owner(rt), correlation_id="c1",
                                                           names=[doc.docpath, doc.docpath, "custom-documents/x.json"]))
        events = new_events(rt, before)
        assert removed == 1
        assert sorted(kinds(events)) == ["Document.Deleted", "Workspace.DocumentsRemoved", "Workspace.DocumentsRemoved"]
        assert stamps(events) == {(1, None, "c1")}
        assert document_by_path(rt.ctx, doc.docpath) is None
        assert [d.docpath for d in rt.ctx.library.workspace_documents(first.id)] == [kept.docpath]
        assert rt.ctx.library.workspace_documents(second.id) == []
        assert rt.ctx.content.index.count(second.aggregate_id) == 0


def test_removing_unknown_documents_is_a_success_that_records_nothing(tmp_path):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        assert remove_documents(rt.ctx, RemoveDocuments(principal=owner(rt), correlation_id="c1", names=[])) == 0
        assert remove_documents(rt.ctx, RemoveDocuments(principal=owner(rt), correlation_id="c2",
                                                        names=["custom-documents/absent.json"])) == 0
        with pytest.raises(InvalidInput):
            remove_documents(rt.ctx, RemoveDocuments(principal=owner(rt), correlation_id="c3", names=["no-folder"]))
        assert new_events(rt, before) == []


def test_move_files_moves_unembedded_documents_and_skips_embedded_ones(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        loose = _raw(rt).document
        embedded = _raw(rt, "beavers", "Beavers build dams.", workspaces=[ws.slug]).document
        before = head(rt)
        moved = move_files(rt.ctx, MoveFiles(principal=owner(rt), correlation_id="c1", moves=[
            (loose.docpath, f"archive/{loose.filename}"), (embedded.docpath, f"archive/{embedded.filename}")]))
        events = new_events(rt, before)
        assert moved == (1, 1)
        assert kinds(events) == ["Folder.Created", "Document.Moved"] and stamps(events) == {(1, None, "c1")}
        assert document_by_path(rt.ctx, f"archive/{loose.filename}") is not None
        assert document_by_path(rt.ctx, embedded.docpath) is not None


def test_move_files_refuses_a_rename_or_an_unknown_source_and_records_nothing(tmp_path):
    with memory_runtime(tmp_path) as rt:
        doc = _raw(rt).document
        before = head(rt)
        with pytest.raises(InvalidInput, match="keep the file name"):
            move_files(rt.ctx, MoveFiles(principal=owner(rt), correlation_id="c1",
                                         moves=[(doc.docpath, "archive/renamed.json")]))
        with pytest.raises(NotFound):
            move_files(rt.ctx, MoveFiles(principal=owner(rt), correlation_id="c2", moves=[
                (doc.docpath, f"archive/{doc.filename}"), ("custom-documents/absent.json", "archive/absent.json")]))
        with pytest.raises(PermissionDenied):
            move_files(rt.ctx, MoveFiles(principal=user(rt), correlation_id="c3",
                                         moves=[(doc.docpath, f"archive/{doc.filename}")]))
        assert kinds(new_events(rt, before)) == ["UserDirectory.Entered", "User.Registered"]  # only the given user
