"""Document routes end to end: real files (a hand-written PDF, a python-docx DOCX, text formats),
the real embedding model and faiss, a real http.server for links, on both backends.

Uploads keep the original bytes and the extracted text as content-addressed blobs under
DATA_DIR/blobs (in PostgreSQL when scaled out) and record an event with their hashes and the actor, never the text. Bad input
is a 4xx JSON answer that stores nothing and writes nothing outside DATA_DIR."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import docx
import psycopg
import pytest

from tests.support.app import bearer, client_for, multi_user_keys, owner_key
from tests.support.files import make_pdf
from tests.support.web import http_server

UPLOAD = "/api/v1/document/upload"
DEFAULT_FOLDER = "custom-documents"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# upstream's document entry in an upload answer (reference §1.3)
UPSTREAM_DOC_FIELDS = {"location", "name", "url", "title", "docAuthor", "description", "docSource", "chunkSource",
                       "published", "wordCount", "token_count_estimate"}
METADATA_KEYS = {"url", "title", "docAuthor", "description", "docSource", "chunkSource", "published"}


# --- real files ---


def make_docx(paragraphs: list[str], title: str | None = None, author: str | None = None) -> bytes:
    document = docx.Document()
    if title:
        document.core_properties.title = title
    if author:
        document.core_properties.author = author
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    table = document.add_table(rows=2, cols=2)
    for row, values in zip(table.rows, (("Station", "Depth"), ("Trench", "10994"))):
        for cell, value in zip(row.cells, values):
            cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def multipart(*parts: tuple[str, bytes | None, bytes, str | None]) -> tuple[bytes, str]:
    """A multipart body written byte for byte (name, raw filename or None, data, content type):
    the HTTP client would percent-encode or escape a hostile file name; a raw body does not."""
    boundary = b"ledgerllm-test-" + uuid.uuid4().hex.encode()
    body = b""
    for name, filename, data, content_type in parts:
        body += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"'
        if filename is not None:
            body += b'; filename="' + filename + b'"'
        body += b"\r\n"
        if content_type:
            body += b"Content-Type: " + content_type.encode() + b"\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return body, "multipart/form-data; boundary=" + boundary.decode()


# --- helpers ---


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_bytes(backend, digest: str) -> bytes:
    """A blob as stored: a file under DATA_DIR/blobs, or rows in PostgreSQL when scaled out."""
    if backend.database_url:
        with psycopg.connect(backend.database_url) as conn:
            return b"".join(bytes(d) for (d,) in conn.execute(
                "SELECT data FROM ledger_blob_chunks WHERE digest = %s ORDER BY seq", (digest,)))
    return (backend.data_dir / "blobs" / digest[:2] / digest[2:]).read_bytes()


def blob_files(backend) -> list[str]:
    """The digests of every stored blob (a digest twice would be a blob kept twice)."""
    if backend.database_url:
        with psycopg.connect(backend.database_url) as conn:
            if conn.execute("SELECT to_regclass('ledger_blobs')").fetchone()[0] is None:
                return []
            return sorted(d for (d,) in conn.execute("SELECT digest FROM ledger_blobs"))
    return sorted(p.parent.name + p.name for p in (backend.data_dir / "blobs").rglob("*") if p.is_file())


def files_outside_data_dir(backend) -> set[Path]:
    """Every file in the test's temp dir that is not under DATA_DIR."""
    root = backend.data_dir.parent
    return {p for p in root.rglob("*") if p.is_file() and backend.data_dir not in p.parents}


def topic(event: dict[str, Any]) -> str:
    return event["topic"].rsplit(":", 1)[1]


def events_since(backend, before: int, name: str | None = None) -> list[dict[str, Any]]:
    events = backend.raw_events()[before:]
    return [e for e in events if name is None or topic(e) == name]


def issued_key(client) -> tuple[str, int]:
    """A full-access owner key made through the HTTP API: (secret, id)."""
    key = client.post("/api/system/generate-api-key", json={"name": "docs"}, headers=bearer(owner_key(client)))
    assert key.status_code == 200, key.text
    return key.json()["apiKey"]["secret"], key.json()["apiKey"]["id"]


def upload(client, headers, name: str, data: bytes, content_type: str = "text/plain", folder: str | None = None,
           **fields: str):
    path = UPLOAD if folder is None else f"{UPLOAD}/{folder}"
    return client.post(path, files={"file": (name, data, content_type)}, data=fields or None, headers=headers)


def uploaded(response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["error"] is None, body
    assert len(body["documents"]) == 1, body
    return body["documents"][0]


def new_workspace(client, headers, name: str) -> str:
    response = client.post("/api/v1/workspace/new", json={"name": name}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["workspace"]["slug"]


def search(client, headers, slug: str, query: str) -> list[dict[str, Any]]:
    response = client.post(f"/api/v1/workspace/{slug}/vector-search", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def found_docpaths(client, headers, slug: str, query: str) -> list[str]:
    return [r["metadata"]["docpath"] for r in search(client, headers, slug, query)]


def assert_refused(response, status: int | None = None, what: object = "") -> dict[str, Any]:
    """A 4xx JSON answer with a non-empty message (`error` or `message`); never a 500."""
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, (what, response.status_code, response.text)
    body = response.json()
    message = body.get("error") or body.get("message")
    assert isinstance(message, str) and message, (what, body)
    if "success" in body:
        assert body["success"] is False, (what, body)
    return body


# --- a real web server on loopback for upload-link ---


class PageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        PageHandler.seen.append(self.path)
        if self.path == "/metadata-redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = (b"<html><head><title>Otter Facts</title><script>var hidden = 'scriptonly';</script></head>"
                b"<body><h1>Otters</h1><p>Sea otters hold hands while they sleep so they do not drift apart.</p>"
                b"</body></html>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    with http_server(PageHandler) as url:
        yield url


# --- uploads ---

FORMATS = [
    # name, bytes, content type, words that must be in the extracted text, words that must not
    ("notes.txt", b"Plain text about the amber lighthouse keeper.\n", "text/plain",
     ["amber lighthouse keeper"], []),
    ("guide.md", b"# Guide\n\nMarkdown about **violet** glaciers.\n", "text/markdown",
     ["violet", "glaciers"], []),
    ("page.html", b"<html><head><title>Harbour Page</title><style>p{color:red}</style></head>"
                  b"<body><p>HTML about crimson harbours.</p><script>alert('scriptonly')</script></body></html>",
     "text/html", ["crimson harbours"], ["scriptonly", "color:red"]),
    ("animals.csv", b"animal,habitat\npenguin,antarctic ice\ncamel,sahara\n", "text/csv",
     ["animal: penguin", "habitat: antarctic ice", "animal: camel"], []),
    ("data.json", b'{"river": "turquoise delta", "length": 42}', "application/json",
     ['"river": "turquoise delta"'], []),
    ("report.pdf", make_pdf([["PDF about silver comets"], ["second page on orbits"]], {"Title": "Comet Report"}),
     "application/pdf", ["silver comets", "second page on orbits"], []),
    ("memo.docx", make_docx(["DOCX about golden meadows."], title="Meadow Memo"), DOCX_MIME,
     ["golden meadows", "Station | Depth", "Trench | 10994"], []),
]
TITLES = {"page.html": "Harbour Page", "report.pdf": "Comet Report", "memo.docx": "Meadow Memo"}


def test_each_format_is_stored_by_content_hash_and_recorded_with_its_actor_but_not_its_text(client, backend):
    secret, key_id = issued_key(client)
    headers = bearer(secret)
    for name, data, content_type, wanted, unwanted in FORMATS:
        before = len(backend.raw_events())
        response = upload(client, headers, name, data, content_type)
        doc = uploaded(response)
        assert UPSTREAM_DOC_FIELDS <= set(doc), (name, doc)
        assert doc["location"] == f"{DEFAULT_FOLDER}/{doc['name']}" and doc["name"].endswith(".json"), doc
        assert doc["title"] == TITLES.get(name, name), doc
        assert doc["url"] == f"file://{name}" and doc["chunkSource"] == name, doc
        assert doc["docSource"] == "a file uploaded by the user." and doc["docAuthor"], doc
        assert doc["cached"] is False and doc["pinnedWorkspaces"] == [], doc
        assert isinstance(doc["published"], str) and doc["published"], doc

        # the original bytes, content-addressed
        assert blob_bytes(backend, sha256(data)) == data, name
        # the event: hashes, names, folder, metadata and the actor, never the text
        [event] = events_since(backend, before, "Document.Uploaded")
        state = event["state"]
        text = blob_bytes(backend, state["text_hash"]).decode()
        assert state["content_hash"] == sha256(data), name
        assert state["text_hash"] == sha256(text.encode()), name
        for words in wanted:
            assert words in text, (name, words, text)
        for words in unwanted:
            assert words not in text, (name, words, text)
        assert doc["wordCount"] == len(text.split()) and doc["token_count_estimate"] > 0, (name, doc)
        assert state["original_name"] == name and state["folder"] == DEFAULT_FOLDER, state
        assert state["filename"] == doc["name"] and state["document_id"] == doc["id"], state
        assert state["source"] == "upload" and state["size"] == len(data), state
        assert state["metadata"] == {k: doc[k] for k in METADATA_KEYS}, state
        assert state["actor_user_id"] == 1 and state["actor_api_key_id"] == key_id, state
        assert state["correlation_id"] == response.headers["x-request-id"], state
        stored = json.dumps(event)
        for words in wanted:
            assert words not in stored, f"the event stores the text of {name}: {words!r}"
        assert "text" not in state and "pageContent" not in state, state
    # the same bytes again: a second document, the blob kept once
    again = uploaded(upload(client, headers, "notes.txt", FORMATS[0][1]))
    assert again["location"] != f"{DEFAULT_FOLDER}/notes.txt" and again["name"].startswith("notes.txt-")
    assert blob_files(backend).count(sha256(FORMATS[0][1])) == 1


def test_the_author_a_file_declares_becomes_its_doc_author(client):
    headers = bearer(owner_key(client))
    pdf = uploaded(upload(client, headers, "signed.pdf", make_pdf([["Signed report body"]],
                                                                   {"Title": "Signed", "Author": "Ada Lovelace"}),
                          "application/pdf"))
    memo = uploaded(upload(client, headers, "signed.docx", make_docx(["Signed memo body"], author="Grace Hopper"),
                           DOCX_MIME))
    page = uploaded(upload(client, headers, "signed.html", b'<html><head><meta name="author" content="Alan Turing">'
                                                           b"</head><body><p>Signed page body</p></body></html>",
                           "text/html"))
    authors = {"pdf": pdf["docAuthor"], "docx": memo["docAuthor"], "html": page["docAuthor"]}
    assert authors == {"pdf": "Ada Lovelace", "docx": "Grace Hopper", "html": "Alan Turing"}, (
        "BUG: the parsers extract the author of a PDF (/Author), DOCX (core author) and HTML page "
        "(<meta name=author>) under the key 'author', but application/documents._metadata keeps only "
        f"METADATA_KEYS ('docAuthor', ...), so the declared author is dropped and docAuthor stays 'Unknown': {authors}")


def test_upload_into_a_folder_and_workspaces_is_searchable_and_metadata_overrides_the_title(client, backend):
    headers = bearer(owner_key(client))
    slug = new_workspace(client, headers, "Harbour Research")
    other = new_workspace(client, headers, "Second Space")
    before = len(backend.raw_events())
    meta = json.dumps({"title": "Lighthouse Manual", "docAuthor": "Keeper Jones", "description": "how to keep it"})
    response = upload(client, headers, "manual.txt",
                      b"The lighthouse keeper polishes the brass lantern every night before the storm.",
                      folder="manuals", addToWorkspaces=f"{slug}, {other}", metadata=meta)
    doc = uploaded(response)
    assert response.json()["failedToEmbed"] == [] and response.json()["embeddingErrors"] == []
    assert doc["location"] == f"manuals/{doc['name']}", doc
    assert (doc["title"], doc["docAuthor"], doc["description"]) == ("Lighthouse Manual", "Keeper Jones",
                                                                    "how to keep it"), doc
    assert doc["cached"] is True, doc
    topics = [topic(e) for e in events_since(backend, before)]
    assert topics.count("Folder.Created") == 1 and topics.count("Document.Uploaded") == 1, topics
    assert topics.count("Workspace.DocumentsEmbedded") == 2, topics
    for workspace in (slug, other):
        results = search(client, headers, workspace, "keeper polishing the brass lantern")
        assert results and results[0]["metadata"]["docpath"] == doc["location"], results
        assert "brass lantern" in results[0]["text"] and results[0]["metadata"]["title"] == "Lighthouse Manual"
        assert 0 < results[0]["score"] <= 1 and results[0]["distance"] == pytest.approx(1 - results[0]["score"])
    # the folder exists now and lists the document
    listed = client.get("/api/v1/documents/folder/manuals", headers=headers).json()
    assert [d["location"] for d in listed["documents"]] == [doc["location"]], listed
    # an unknown workspace: the document is stored, the failure reported
    response = upload(client, headers, "stray.txt", b"A stray note about nothing much at all.",
                      addToWorkspaces="no-such-space")
    stray = uploaded(response)
    assert response.json()["failedToEmbed"] == [stray["location"]], response.json()
    assert "no-such-space" in response.json()["embeddingErrors"][0]


def test_caller_metadata_cannot_replace_the_documents_location_name_or_id(client):
    headers = bearer(owner_key(client))
    spoof = {"title": "Spoofed", "location": "elsewhere/spoof.json", "name": "spoof.json", "id": "spoof-id",
             "type": "folder"}
    doc = uploaded(upload(client, headers, "honest.txt", b"An honest note about hedgehogs.",
                          metadata=json.dumps(spoof)))
    assert doc["title"] == "Spoofed", doc
    [listed] = client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}", headers=headers).json()["documents"]
    real = {"location": listed["location"], "name": listed["name"], "id": listed["id"], "type": listed["type"]}
    shown = {k: doc[k] for k in ("location", "name", "id", "type")}
    genuine = real["location"].startswith(f"{DEFAULT_FOLDER}/honest.txt-") and real["type"] == "file"
    assert genuine and shown["location"] != "elsewhere/spoof.json", (
        "BUG: caller-supplied metadata keys 'location', 'name', 'id' and 'type' are accepted by "
        "application/documents._metadata (any key) and api/routes/documents.document_out spreads the metadata "
        "after the real id/location/name/type, so the upload answer and every listing report the caller's "
        f"values instead of the document's docpath: upload answer {shown}, folder listing {real}")


def test_moving_several_documents_into_a_new_folder_in_one_request(client, backend):
    headers = bearer(owner_key(client))
    docs = [uploaded(upload(client, headers, f"pebble-{i}.txt", f"Pebble number {i} on the beach.".encode()))
            for i in range(2)]
    response = client.post("/api/v1/document/move-files", headers=headers,
                           json={"files": [{"from": d["location"], "to": f"new-shelf/{d['name']}"} for d in docs]})
    assert response.status_code == 200 and response.json() == {"success": True, "message": None}, (
        "BUG: moving two documents into a folder that does not exist yet, in one move-files request, always "
        "fails: application/documents.move_files looks the target folder up once per file and calls "
        "Folder.create for each, so the save conflicts with itself and the request answers "
        f"{response.status_code} {response.json()} (a retry can never succeed)")
    listed = client.get("/api/v1/documents/folder/new-shelf", headers=headers).json()
    assert sorted(d["name"] for d in listed["documents"]) == sorted(d["name"] for d in docs), listed


def test_upload_link_refuses_loopback_by_default_and_fetches_it_when_allowed(backend, web):
    page = f"{web}/otters"
    with client_for(backend) as client:
        headers = bearer(owner_key(client))
        before, blobs = len(backend.raw_events()), blob_files(backend)
        seen = len(PageHandler.seen)
        body = assert_refused(client.post("/api/v1/document/upload-link", json={"link": page}, headers=headers))
        assert "loopback" in body["error"] and body["documents"] == [], body
        assert len(PageHandler.seen) == seen, "the refused link was requested anyway"
        assert len(backend.raw_events()) == before and blob_files(backend) == blobs
    with client_for(backend, link_allowlist=frozenset({"127.0.0.1"})) as client:
        secret, key_id = issued_key(client)
        headers = bearer(secret)
        slug = new_workspace(client, headers, "Otters")
        before = len(backend.raw_events())
        response = client.post("/api/v1/document/upload-link", json={"link": page, "addToWorkspaces": slug},
                               headers=headers)
        doc = uploaded(response)
        assert UPSTREAM_DOC_FIELDS | {"id", "pageContent"} <= set(doc), doc
        assert "hold hands while they sleep" in doc["pageContent"] and "scriptonly" not in doc["pageContent"], doc
        assert doc["title"] == "Otter Facts" and doc["url"] == page and doc["chunkSource"] == f"link://{page}", doc
        assert doc["docSource"] == "URL link uploaded by the user.", doc
        [event] = events_since(backend, before, "Document.Uploaded")
        state = event["state"]
        assert state["source"] == "link" and state["actor_api_key_id"] == key_id, state
        assert state["correlation_id"] == response.headers["x-request-id"], state
        assert blob_bytes(backend, state["content_hash"]).startswith(b"<html>"), state
        assert "hold hands" not in json.dumps(event), "the event stores the page text"
        assert found_docpaths(client, headers, slug, "otters holding hands asleep")[:1] == [doc["location"]]

        # a redirect to the cloud metadata address is refused although loopback is allowed
        before, blobs = len(backend.raw_events()), blob_files(backend)
        seen = len(PageHandler.seen)
        body = assert_refused(client.post("/api/v1/document/upload-link", json={"link": f"{web}/metadata-redirect"},
                                          headers=headers))
        assert "169.254.169.254" in body["error"] and "link-local" in body["error"], body
        assert PageHandler.seen[seen:] == ["/metadata-redirect"], PageHandler.seen[seen:]
        assert len(backend.raw_events()) == before and blob_files(backend) == blobs
        for bad in ("file:///etc/passwd", "ftp://127.0.0.1/x", "not a url", "http://"):
            assert_refused(client.post("/api/v1/document/upload-link", json={"link": bad}, headers=headers))
        assert_refused(client.post("/api/v1/document/upload-link", headers=headers,
                                   json={"link": page, "scraperHeaders": {"Host": "evil.example"}}))
        assert len(backend.raw_events()) == before and blob_files(backend) == blobs


def test_raw_text_needs_text_and_a_title_and_answers_upstreams_shape(client, backend):
    headers = bearer(owner_key(client))
    before = len(backend.raw_events())
    empty = "The 'textContent' key cannot have an empty value."
    missing = ("You are missing required metadata key:value pairs in your request. "
               "Required metadata key:values are 'title'")
    for body, message in (({"textContent": "", "metadata": {"title": "x"}}, empty),
                          ({"textContent": "   ", "metadata": {"title": "x"}}, empty),
                          ({"metadata": {"title": "x"}}, empty),
                          ({"textContent": 42, "metadata": {"title": "x"}}, empty),
                          ({"textContent": "Some words."}, missing),
                          ({"textContent": "Some words.", "metadata": {}}, missing),
                          ({"textContent": "Some words.", "metadata": {"title": ""}}, missing),
                          ({"textContent": "Some words.", "metadata": {"docAuthor": "x"}}, missing)):
        response = client.post("/api/v1/document/raw-text", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json() == {"success": False, "error": message, "documents": []}, body
    assert len(backend.raw_events()) == before
    text = "Beavers build dams from branches and mud to make calm ponds."
    response = client.post("/api/v1/document/raw-text", headers=headers,
                           json={"textContent": text, "metadata": {"title": "Beaver Notes", "docAuthor": "Ranger"}})
    doc = uploaded(response)
    assert UPSTREAM_DOC_FIELDS | {"id", "pageContent"} <= set(doc), doc
    assert doc["pageContent"] == text and doc["title"] == "Beaver Notes" and doc["docAuthor"] == "Ranger", doc
    assert doc["docSource"] == "raw text uploaded by the user." and doc["wordCount"] == len(text.split()), doc
    assert response.json()["failedToEmbed"] == [], response.json()
    [event] = events_since(backend, before, "Document.Uploaded")
    assert event["state"]["source"] == "raw-text" and event["state"]["content_hash"] == sha256(text.encode())
    assert text not in json.dumps(event) and blob_bytes(backend, sha256(text.encode())).decode() == text


def test_listings_folders_single_documents_and_upstream_schemas(client):
    headers = bearer(owner_key(client))
    docs = [uploaded(upload(client, headers, f"note-{i}.txt", f"Note number {i} about owls.".encode()))
            for i in range(3)]
    other = uploaded(upload(client, headers, "elsewhere.txt", b"A note kept elsewhere.", folder="elsewhere"))

    tree = client.get("/api/v1/documents", headers=headers)
    assert tree.status_code == 200
    local = tree.json()["localFiles"]
    assert (local["name"], local["type"]) == ("documents", "folder"), local
    folders = {f["name"]: f for f in local["items"]}
    assert set(folders) == {DEFAULT_FOLDER, "elsewhere"} and all(f["type"] == "folder" for f in folders.values())
    # oldest first (created_at has millisecond precision; the file name breaks ties)
    order = [d["location"] for d in folders[DEFAULT_FOLDER]["items"]]
    assert sorted(order) == sorted(d["location"] for d in docs), order
    assert [d["location"] for d in folders["elsewhere"]["items"]] == [other["location"]]
    entry = folders[DEFAULT_FOLDER]["items"][0]
    assert entry["type"] == "file" and entry["cached"] is False and entry["watched"] is False, entry
    assert METADATA_KEYS <= set(entry) and "pageContent" not in entry, entry

    # ?folder= gives the folder result with upstream's default page of 100
    page = client.get(f"/api/v1/documents?folder={DEFAULT_FOLDER}&limit=2", headers=headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["folder"], body["totalCount"], body["hasMore"], body["error"]) == (DEFAULT_FOLDER, 3, True, None)
    assert [d["location"] for d in body["documents"]] == order[:2], body
    assert len(client.get(f"/api/v1/documents?folder={DEFAULT_FOLDER}", headers=headers).json()["documents"]) == 3
    unknown = client.get("/api/v1/documents?folder=nowhere", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"] == "Folder nowhere does not exist", unknown.text

    # /documents/folder/{name} with offset and limit (default: all)
    whole = client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}", headers=headers).json()
    assert whole["totalCount"] == 3 and whole["hasMore"] is False, whole
    assert [d["location"] for d in whole["documents"]] == order, whole
    window = client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}?offset=1&limit=1", headers=headers).json()
    assert [d["location"] for d in window["documents"]] == order[1:2] and window["hasMore"] is True, window
    tail = client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}?offset=2&limit=5", headers=headers).json()
    assert [d["location"] for d in tail["documents"]] == order[2:] and tail["hasMore"] is False, tail
    beyond = client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}?offset=10", headers=headers).json()
    assert beyond["documents"] == [] and beyond["totalCount"] == 3 and beyond["hasMore"] is False, beyond
    missing = client.get("/api/v1/documents/folder/nowhere", headers=headers)
    assert missing.status_code == 404, missing.text
    assert missing.json() == {"folder": None, "documents": [], "totalCount": 0, "hasMore": False,
                              "error": "Folder nowhere does not exist"}
    for query in ("limit=0", "limit=1001", "limit=abc", "limit=-1", "offset=-1", "offset=abc"):
        assert_refused(client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}?{query}", headers=headers), 400)
    assert client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}?limit=all", headers=headers).status_code == 200

    # one document by file name, searched in every folder
    one = client.get(f"/api/v1/document/{other['name']}", headers=headers)
    assert one.status_code == 200, one.text
    assert one.json()["document"]["location"] == other["location"] and one.json()["document"]["type"] == "file"
    gone = client.get("/api/v1/document/no-such-file.json", headers=headers)
    assert gone.status_code == 404 and gone.json() == {"document": None, "error": "Document not found"}

    types = client.get("/api/v1/document/accepted-file-types", headers=headers).json()["types"]
    assert {".txt", ".md"} <= set(types["text/plain"]) and types["application/pdf"] == [".pdf"], types
    assert types[DOCX_MIME] == [".docx"] and ".csv" in types["text/csv"] and ".html" in types["text/html"], types
    assert types["application/json"] == [".json"], types
    schema = client.get("/api/v1/document/metadata-schema", headers=headers).json()["schema"]
    assert set(schema) == METADATA_KEYS and schema["title"] == "string", schema


# --- folders, moves, removal ---


def test_folders_are_created_once_and_moves_skip_embedded_documents(client, backend):
    headers = bearer(owner_key(client))
    created = client.post("/api/v1/document/create-folder", json={"name": "archive"}, headers=headers)
    assert created.status_code == 200 and created.json() == {"success": True, "message": None}
    before = len(backend.raw_events())
    duplicate = client.post("/api/v1/document/create-folder", json={"name": "archive"}, headers=headers)
    assert duplicate.status_code == 409, duplicate.text
    assert duplicate.json() == {"success": False, "message": "Folder by that name already exists"}
    assert len(backend.raw_events()) == before
    assert client.get("/api/v1/documents/folder/archive", headers=headers).json()["totalCount"] == 0

    loose = uploaded(upload(client, headers, "loose.txt", b"A loose note about maple syrup harvests."))
    moved = client.post("/api/v1/document/move-files", headers=headers,
                        json={"files": [{"from": loose["location"], "to": f"archive/{loose['name']}"}]})
    assert moved.status_code == 200 and moved.json() == {"success": True, "message": None}, moved.text
    [event] = events_since(backend, before, "Document.Moved")
    assert event["state"]["folder"] == "archive" and event["state"]["correlation_id"] == moved.headers["x-request-id"]
    archive = client.get("/api/v1/documents/folder/archive", headers=headers).json()
    assert [d["location"] for d in archive["documents"]] == [f"archive/{loose['name']}"], archive
    assert client.get(f"/api/v1/document/{loose['name']}", headers=headers).json()["document"]["location"] == \
        f"archive/{loose['name']}"
    # a moved document can be embedded and found under its new path
    slug = new_workspace(client, headers, "Syrup")
    embedded = client.post(f"/api/v1/workspace/{slug}/update-embeddings", headers=headers,
                           json={"adds": [f"archive/{loose['name']}"]})
    assert embedded.status_code == 200 and embedded.json()["failedToEmbed"] == [], embedded.text
    assert found_docpaths(client, headers, slug, "maple syrup harvest")[:1] == [f"archive/{loose['name']}"]

    # embedded documents stay where they are
    kept = uploaded(upload(client, headers, "kept.txt", b"An embedded note about tidal pools.", addToWorkspaces=slug))
    before = len(backend.raw_events())
    refused = client.post("/api/v1/document/move-files", headers=headers,
                          json={"files": [{"from": kept["location"], "to": f"archive/{kept['name']}"}]})
    assert refused.status_code == 200, refused.text
    assert refused.json() == {"success": True, "message": "1/1 files not moved. Unembed them from all workspaces."}
    assert len(backend.raw_events()) == before
    assert client.get(f"/api/v1/document/{kept['name']}", headers=headers).json()["document"]["location"] == \
        kept["location"]
    # a move to a new folder creates it; an unknown source is 404
    back = client.post("/api/v1/document/move-files", headers=headers,
                       json={"files": [{"from": f"archive/{loose['name']}", "to": f"fresh/{loose['name']}"}]})
    # the loose document is embedded now too, so it is not moved either
    assert back.json()["message"] == "1/1 files not moved. Unembed them from all workspaces.", back.text
    unknown = client.post("/api/v1/document/move-files", headers=headers,
                          json={"files": [{"from": "archive/none.json", "to": "fresh/none.json"}]})
    assert_refused(unknown, 404)
    renamed = client.post("/api/v1/document/move-files", headers=headers,
                          json={"files": [{"from": kept["location"], "to": "archive/other-name.json"}]})
    assert_refused(renamed, 400)
    assert len(backend.raw_events()) == before


def test_removing_a_folder_removes_its_documents_and_their_vectors(client, backend):
    headers = bearer(owner_key(client))
    slug = new_workspace(client, headers, "Volcanoes")
    doomed = uploaded(upload(client, headers, "lava.txt", b"Basalt lava flows cool into hexagonal columns.",
                             folder="doomed", addToWorkspaces=slug))
    kept = uploaded(upload(client, headers, "ash.txt", b"Volcanic ash clouds ground aeroplanes for days.",
                           addToWorkspaces=slug))
    assert doomed["location"] in found_docpaths(client, headers, slug, "basalt lava hexagonal columns")
    before = len(backend.raw_events())
    response = client.request("DELETE", "/api/v1/document/remove-folder", json={"name": "doomed"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "message": "Folder removed successfully"}
    topics = [topic(e) for e in events_since(backend, before)]
    assert {"Folder.Removed", "Document.Deleted", "Workspace.DocumentsRemoved"} <= set(topics), topics
    [removed] = events_since(backend, before, "Workspace.DocumentsRemoved")
    assert removed["state"]["docpaths"] == [doomed["location"]], removed
    assert removed["state"]["correlation_id"] == response.headers["x-request-id"], removed
    assert doomed["location"] not in found_docpaths(client, headers, slug, "basalt lava hexagonal columns")
    assert kept["location"] in found_docpaths(client, headers, slug, "volcanic ash grounds planes")
    assert client.get("/api/v1/documents/folder/doomed", headers=headers).status_code == 404
    assert client.get(f"/api/v1/document/{doomed['name']}", headers=headers).status_code == 404
    names = [f["name"] for f in client.get("/api/v1/documents", headers=headers).json()["localFiles"]["items"]]
    assert "doomed" not in names, names
    workspace = client.get(f"/api/v1/workspace/{slug}", headers=headers).json()["workspace"][0]
    assert [d["docpath"] for d in workspace["documents"]] == [kept["location"]], workspace["documents"]
    # gone, so a second removal is 404; the default folder cannot be removed
    before = len(backend.raw_events())
    again = client.request("DELETE", "/api/v1/document/remove-folder", json={"name": "doomed"}, headers=headers)
    assert again.status_code == 404 and again.json()["success"] is False, again.text
    assert_refused(client.request("DELETE", "/api/v1/document/remove-folder", json={"name": DEFAULT_FOLDER},
                                  headers=headers), 400)
    assert len(backend.raw_events()) == before
    # the name can be used again
    assert client.post("/api/v1/document/create-folder", json={"name": "doomed"}, headers=headers).json() == \
        {"success": True, "message": None}


def test_removing_documents_unembeds_them_everywhere(client, backend):
    headers = bearer(owner_key(client))
    slug = new_workspace(client, headers, "Deserts")
    doc = uploaded(upload(client, headers, "dunes.txt", b"Sand dunes in the Namib desert glow orange at dawn.",
                          addToWorkspaces=slug))
    assert found_docpaths(client, headers, slug, "orange dunes of the namib")[:1] == [doc["location"]]
    before = len(backend.raw_events())
    response = client.request("DELETE", "/api/v1/system/remove-documents", json={"names": [doc["location"]]},
                              headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "message": "Documents removed successfully"}
    [removed] = events_since(backend, before, "Workspace.DocumentsRemoved")
    assert removed["state"]["docpaths"] == [doc["location"]] and removed["state"]["actor_user_id"] == 1, removed
    assert len(events_since(backend, before, "Document.Deleted")) == 1
    assert doc["location"] not in found_docpaths(client, headers, slug, "orange dunes of the namib")
    assert client.get(f"/api/v1/document/{doc['name']}", headers=headers).status_code == 404
    workspace = client.get(f"/api/v1/workspace/{slug}", headers=headers).json()["workspace"][0]
    assert workspace["documents"] == [], workspace
    before = len(backend.raw_events())
    # as upstream, names that are already gone (or none at all) are a success that removes nothing
    for names in ([doc["location"]], []):
        gone = client.request("DELETE", "/api/v1/system/remove-documents", json={"names": names}, headers=headers)
        assert gone.status_code == 200 and gone.json() == {"success": True, "message": "Documents removed successfully"}
    for names in (["../../etc/passwd"], ["a/b/c.json"], ["nofolder.json"], [f"x\x00/{doc['name']}"]):
        assert_refused(client.request("DELETE", "/api/v1/system/remove-documents", json={"names": names},
                                      headers=headers))
    assert len(backend.raw_events()) == before


# --- bad input ---


def test_bad_uploads_answer_4xx_json_store_nothing_and_write_nothing_outside_data_dir(client, backend):
    headers = bearer(owner_key(client))
    token = uuid.uuid4().hex[:8]
    outside = backend.data_dir.parent / f"outside-{token}"
    pdf = make_pdf([["fine"]])
    bad_files = [
        ("unsupported extension", b"tool.exe", b"MZ\x90\x00 not a program", "application/octet-stream"),
        ("unsupported image", b"picture.png", b"\x89PNG\r\n\x1a\n....", "image/png"),
        ("corrupt pdf", b"broken.pdf", b"%PDF-1.4\nthis is not a pdf body", "application/pdf"),
        ("truncated pdf", b"cut.pdf", pdf[:60], "application/pdf"),
        ("pdf without text", b"blank.pdf", make_pdf([[]]), "application/pdf"),
        ("corrupt docx", b"broken.docx", b"PK\x03\x04 not really a zip", DOCX_MIME),
        ("truncated docx", b"cut.docx", make_docx(["cut short"])[:400], DOCX_MIME),
        ("empty file", b"empty.txt", b"", "text/plain"),
        ("blank file", b"blank.md", b"  \n\t\n", "text/markdown"),
        ("binary as text", b"junk.txt", bytes(range(256)) * 4, "text/plain"),
        ("invalid json", b"bad.json", b'{"a": ', "application/json"),
        ("dot dot", b"..", b"dots", "text/plain"),
        ("parent escape", f"../escape-{token}.txt".encode(), b"escape", "text/plain"),
        ("deep parent escape", f"../../../../escape-{token}.txt".encode(), b"escape", "text/plain"),
        ("slash", f"sub/escape-{token}.txt".encode(), b"escape", "text/plain"),
        ("backslash", f"..\\escape-{token}.txt".encode(), b"escape", "text/plain"),
        ("nul", f"escape-{token}.txt\x00.pdf".encode(), b"escape", "text/plain"),
        ("nul and slash", f"x\x00/../escape-{token}.txt".encode(), b"escape", "text/plain"),
        ("absolute", str(outside / "abs.txt").encode(), b"escape", "text/plain"),
        ("absolute etc", b"/etc/ledgerllm-escape.txt", b"escape", "text/plain"),
        ("newline", f"escape-{token}\n.txt".encode(), b"escape", "text/plain"),
        ("blank name", b"   ", b"escape", "text/plain"),
    ]
    events, blobs, files = len(backend.raw_events()), blob_files(backend), files_outside_data_dir(backend)
    for label, filename, data, content_type in bad_files:
        body, ctype = multipart(("file", filename, data, content_type))
        for path in (UPLOAD, f"{UPLOAD}/incoming"):
            response = client.post(path, content=body, headers={**headers, "Content-Type": ctype})
            refused = assert_refused(response, what=(label, path))
            assert refused["documents"] == [], (label, refused)
    other_requests = [
        ("missing file field", multipart(("metadata", None, b'{"title": "x"}', None))),
        ("file sent as a plain field", multipart(("file", None, b"just text", None))),
        ("file under another name", multipart(("document", b"a.txt", b"some text", "text/plain"))),
        ("addToWorkspaces as a file", multipart(("file", b"a.txt", b"some text", "text/plain"),
                                                ("addToWorkspaces", b"w.txt", b"ws", "text/plain"))),
        ("addToWorkspaces twice", multipart(("file", b"a.txt", b"some text", "text/plain"),
                                            ("addToWorkspaces", None, b"a", None),
                                            ("addToWorkspaces", None, b"b", None))),
        ("metadata not json", multipart(("file", b"a.txt", b"some text", "text/plain"),
                                        ("metadata", None, b"{title", None))),
        ("metadata a list", multipart(("file", b"a.txt", b"some text", "text/plain"),
                                      ("metadata", None, b"[1]", None))),
        ("metadata nested", multipart(("file", b"a.txt", b"some text", "text/plain"),
                                      ("metadata", None, b'{"title": {"x": 1}}', None))),
    ]
    for label, (body, ctype) in other_requests:
        response = client.post(UPLOAD, content=body, headers={**headers, "Content-Type": ctype})
        assert_refused(response, what=label)
    response = client.post(UPLOAD, files={"file": ("a.txt", b"some text", "text/plain")},
                           data={"addToWorkspaces": ["a", "b"]}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "addToWorkspaces must be a comma-separated string of workspace slugs"
    assert_refused(client.post(UPLOAD, headers=headers))  # no body at all
    assert_refused(client.post(UPLOAD, json={"file": "x"}, headers=headers))  # not multipart
    assert_refused(client.post(UPLOAD, content=b"garbage",
                               headers={**headers, "Content-Type": "multipart/form-data; boundary=zz"}))
    assert len(backend.raw_events()) == events, [topic(e) for e in events_since(backend, events)]
    assert blob_files(backend) == blobs
    assert files_outside_data_dir(backend) == files
    for place in (Path.cwd(), Path.cwd().parent, backend.data_dir, backend.data_dir.parent, Path("/etc")):
        assert not list(place.glob(f"*escape*{token}*")) and not (place / "ledgerllm-escape.txt").exists(), place
    assert not outside.exists()


def test_folder_escapes_in_upload_paths_folder_names_and_move_targets_are_refused(client, backend):
    headers = bearer(owner_key(client))
    doc = uploaded(upload(client, headers, "anchor.txt", b"An anchored note about coral reefs."))
    events, blobs, files = len(backend.raw_events()), blob_files(backend), files_outside_data_dir(backend)
    for folder in ("../x", "..", "%2E%2E", "%2E%2E%2Fx", "a/b/c", "a%2Fb%2Fc", "..%5Cx", "x%00y", ".hidden",
                   "-" * 3 + "%0A", "x" * 101):
        response = upload(client, headers, "note.txt", b"A note that must not be stored.", folder=folder)
        assert_refused(response, what=folder)
        assert response.headers["content-type"].startswith("application/json"), (folder, response.headers)
    for name in ("../x", "a/b", "..", "a\\b", "x\x00y", "/abs", "", " ", "x" * 101, ".hidden"):
        assert_refused(client.post("/api/v1/document/create-folder", json={"name": name}, headers=headers), 400,
                       what=name)
        assert_refused(client.request("DELETE", "/api/v1/document/remove-folder", json={"name": name},
                                      headers=headers), what=name)
    for target in (f"../x/{doc['name']}", "a/b/c", f"../{doc['name']}", f"archive/../../{doc['name']}",
                   f"/abs/{doc['name']}", f"..\\x/{doc['name']}", f"x\x00/{doc['name']}", doc["name"],
                   f"{DEFAULT_FOLDER}/../{doc['name']}", f"./{doc['name']}"):
        response = client.post("/api/v1/document/move-files", headers=headers,
                               json={"files": [{"from": doc["location"], "to": target}]})
        body = assert_refused(response, 400, what=target)
        assert body["success"] is False and body["message"], (target, body)
    for source in ("../../etc/passwd", f"../{doc['name']}", "a/b/c"):
        assert_refused(client.post("/api/v1/document/move-files", headers=headers,
                                   json={"files": [{"from": source, "to": f"archive/{doc['name']}"}]}))
    assert len(backend.raw_events()) == events, [topic(e) for e in events_since(backend, events)]
    assert blob_files(backend) == blobs and files_outside_data_dir(backend) == files
    assert client.get(f"/api/v1/document/{doc['name']}", headers=headers).json()["document"]["location"] == \
        doc["location"]


def test_uploads_over_the_limit_are_refused(backend):
    with client_for(backend, upload_max_bytes=1000) as client:
        headers = bearer(owner_key(client))
        assert uploaded(upload(client, headers, "small.txt", b"small " * 100))["wordCount"] == 100
        events, blobs = len(backend.raw_events()), blob_files(backend)
        big = assert_refused(upload(client, headers, "big.txt", b"word " * 300))
        assert "1000" in big["error"], big
        assert_refused(upload(client, headers, "big.txt", b"word " * 300, folder="elsewhere"))
        huge = upload(client, headers, "huge.txt", b"x" * (1100 << 10))  # over the route's body limit too
        assert_refused(huge, 413)
        assert len(backend.raw_events()) == events and blob_files(backend) == blobs


# --- permissions ---


def test_default_users_and_read_only_keys_cannot_change_documents(client, backend):
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    reader = client.post("/api/admin/generate-api-key", json={"scopes": ["read"]}, headers=admin)
    assert reader.status_code == 200 and reader.json()["apiKey"]["scopes"] == ["read"], reader.text
    reader_key = reader.json()["apiKey"]["secret"]
    manager_doc = uploaded(upload(client, bearer(keys["manager"]), "manager.txt", b"A manager's note on herons."))
    events, blobs = len(backend.raw_events()), blob_files(backend)
    for who, key in (("default user", keys["default"]), ("read-only key", reader_key)):
        headers = bearer(key)
        response = upload(client, headers, "denied.txt", b"A note that must not be stored.")
        assert response.status_code == 403, (who, response.text)
        assert response.json()["success"] is False and response.json()["documents"] == [], (who, response.json())
        assert upload(client, headers, "denied.txt", b"Not stored.", folder="mine").status_code == 403, who
        raw = client.post("/api/v1/document/raw-text", json={"textContent": "x", "metadata": {"title": "x"}},
                          headers=headers)
        assert raw.status_code == 403, (who, raw.text)
        assert client.post("/api/v1/document/upload-link", json={"link": "http://127.0.0.1:9/"},
                           headers=headers).status_code == 403, who
        assert client.post("/api/v1/document/create-folder", json={"name": "mine"},
                           headers=headers).status_code == 403, who
        assert client.post("/api/v1/document/move-files", headers=headers, json={"files": [
            {"from": manager_doc["location"], "to": f"mine/{manager_doc['name']}"}]}).status_code == 403, who
        assert client.request("DELETE", "/api/v1/system/remove-documents", headers=headers,
                              json={"names": [manager_doc["location"]]}).status_code == 403, who
        assert client.request("DELETE", "/api/v1/document/remove-folder", headers=headers,
                              json={"name": "anything"}).status_code == 403, who
    assert len(backend.raw_events()) == events, [topic(e) for e in events_since(backend, events)]
    assert blob_files(backend) == blobs
    # reading is allowed to a read-only key
    listed = client.get(f"/api/v1/documents/folder/{DEFAULT_FOLDER}", headers=bearer(reader_key))
    assert listed.status_code == 200 and [d["location"] for d in listed.json()["documents"]] == \
        [manager_doc["location"]]


def test_a_read_only_key_cannot_upload_in_single_user_mode(client, backend):
    owner = bearer(owner_key(client))
    reader = client.post("/api/system/generate-api-key", json={"scopes": ["read"]}, headers=owner)
    assert reader.status_code == 200, reader.text
    headers = bearer(reader.json()["apiKey"]["secret"])
    events = len(backend.raw_events())
    response = upload(client, headers, "denied.txt", b"A note that must not be stored.")
    assert response.status_code == 403 and response.json()["success"] is False, response.text
    assert "write" in response.json()["error"], response.json()
    assert len(backend.raw_events()) == events
    assert client.get("/api/v1/documents", headers=headers).status_code == 200
