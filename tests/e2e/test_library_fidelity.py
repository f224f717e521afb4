"""Workspaces and documents as upstream answers them (slugs, documents[] rows, threads,
remove-documents), who sees which documents, and names normalised once at the boundary."""

from __future__ import annotations

import json
import re

from tests.support.app import bearer, multi_user_keys, owner_key

# Each name with the slug upstream's Workspace.slugify gives it (npm slugify 1.6.9 with
# upstream's extended map and {lower: true}), computed with node.
UPSTREAM_SLUGS = {
    "priya_nair": "priya_nair",
    "Release v1.2!": "release-v1-dot-2-bang",
    "Ünïcödé – Notes": "unicode-notes",
    "C++ (beta) @home": "c-plus-plus-beta-at-home",
    "$100 & <more>": "dollar100-and-lessmoregreater",
    "Привет мир": "privet-mir",
    "  spaced\u3000out  ": "spaced-out",
    "a--b__c": "a-b__c",
}
WORKSPACE_DOCUMENT_FIELDS = {"id", "docId", "filename", "docpath", "workspaceId", "metadata", "pinned", "watched",
                             "createdAt", "lastUpdatedAt"}
DOCUMENT_METADATA_FIELDS = {"id", "url", "title", "docAuthor", "description", "docSource", "chunkSource", "published",
                            "wordCount", "token_count_estimate"}


def _workspace(client, headers, name):
    response = client.post("/api/v1/workspace/new", headers=headers, json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()["workspace"]["slug"]


def _raw(client, headers, title, text, workspaces=""):
    response = client.post("/api/v1/document/raw-text", headers=headers, json={
        "textContent": text, "metadata": {"title": title}, "addToWorkspaces": workspaces})
    assert response.status_code == 200, response.text
    return response.json()["documents"][0]


def test_slugs_are_upstreams_and_a_collision_gets_an_eight_digit_suffix(client):
    headers = bearer(owner_key(client))
    for name, slug in UPSTREAM_SLUGS.items():
        assert _workspace(client, headers, name) == slug, name
        got = client.get(f"/api/v1/workspace/{slug}", headers=headers).json()["workspace"]
        assert [w["name"] for w in got] == [name.strip()], name
    again = _workspace(client, headers, "priya_nair")
    assert re.fullmatch(r"priya_nair-[1-9][0-9]{7}", again), again
    assert client.get("/api/v1/workspace/priya_nair", headers=headers).json()["workspace"][0]["slug"] == "priya_nair"


def test_workspace_documents_are_upstreams_rows_with_the_metadata_json_and_no_chunks(client):
    headers = bearer(owner_key(client))
    slug = _workspace(client, headers, "Shelf")
    doc = _raw(client, headers, "Tide tables", "High tide comes twice a day, about fifty minutes later each day.", slug)
    workspace = client.get(f"/api/v1/workspace/{slug}", headers=headers).json()["workspace"][0]
    [row] = workspace["documents"]
    assert set(row) == WORKSPACE_DOCUMENT_FIELDS, row
    assert (row["docpath"], row["filename"], row["workspaceId"], row["pinned"]) == (
        doc["location"], doc["name"], workspace["id"], False)
    meta = json.loads(row["metadata"])
    assert set(meta) == DOCUMENT_METADATA_FIELDS, meta
    assert (meta["id"], meta["title"], meta["wordCount"], meta["token_count_estimate"]) == (
        doc["id"], "Tide tables", doc["wordCount"], doc["token_count_estimate"])
    embedded = client.post(f"/api/v1/workspace/{slug}/update-embeddings", headers=headers, json={"adds": []}).json()
    assert set(embedded["workspace"]["documents"][0]) == WORKSPACE_DOCUMENT_FIELDS


def test_remove_documents_with_an_empty_or_unknown_list_is_a_success(client, backend):
    headers = bearer(owner_key(client))
    before = len(backend.raw_events())
    for names in ([], ["custom-documents/never-there.json"]):
        response = client.request("DELETE", "/api/v1/system/remove-documents", headers=headers, json={"names": names})
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True, "message": "Documents removed successfully"}
    assert len(backend.raw_events()) == before


def test_workspace_routes_list_the_callers_threads(client):
    keys = multi_user_keys(client)
    admin, default = bearer(keys["admin"]), bearer(keys["default"])
    slug = _workspace(client, admin, "Harbour")
    added = client.post(f"/api/v1/admin/workspaces/{slug}/manage-users", headers=admin,
                        json={"userIds": [keys["default_id"]]})
    assert added.status_code == 200 and added.json()["success"] is True, added.text
    made = client.post(f"/api/v1/workspace/{slug}/thread/new", headers=default, json={"name": "Moorings"})
    assert made.status_code == 200, made.text
    thread = made.json()["thread"]
    mine = [{"user_id": keys["default_id"], "slug": thread["slug"], "name": "Moorings"}]
    assert client.get(f"/api/v1/workspace/{slug}", headers=default).json()["workspace"][0]["threads"] == mine
    assert client.get("/api/v1/workspaces", headers=default).json()["workspaces"][0]["threads"] == mine
    # another user's threads are not listed to the admin
    assert client.get(f"/api/v1/workspace/{slug}", headers=admin).json()["workspace"][0]["threads"] == []


def test_a_default_user_sees_only_documents_in_their_workspaces(client):
    keys = multi_user_keys(client)
    admin, manager, default = bearer(keys["admin"]), bearer(keys["manager"]), bearer(keys["default"])
    ours, theirs = _workspace(client, admin, "Ours"), _workspace(client, admin, "Theirs")
    client.post(f"/api/v1/admin/workspaces/{ours}/manage-users", headers=admin, json={"userIds": [keys["default_id"]]})
    seen = _raw(client, admin, "Visible", "Seals rest on the sandbank at low tide.", ours)
    hidden = _raw(client, admin, "Hidden", "The merger closes next quarter, say nothing.", theirs)
    loose = _raw(client, admin, "Loose", "An unembedded memo about parking spaces.")

    def listed(headers):
        items = client.get("/api/v1/documents", headers=headers).json()["localFiles"]["items"]
        return {d["name"] for folder in items for d in folder["items"]}

    assert listed(default) == {seen["name"]}
    folder = client.get("/api/v1/documents/folder/custom-documents", headers=default).json()
    assert [d["name"] for d in folder["documents"]] == [seen["name"]] and folder["totalCount"] == 1, folder
    assert client.get(f"/api/v1/document/{seen['name']}", headers=default).status_code == 200
    for doc in (hidden, loose):
        refused = client.get(f"/api/v1/document/{doc['name']}", headers=default)
        assert refused.status_code == 404 and refused.json() == {"document": None, "error": "Document not found"}
    everything = {seen["name"], hidden["name"], loose["name"]}
    assert listed(manager) == everything and listed(admin) == everything
    assert client.get(f"/api/v1/document/{hidden['name']}", headers=manager).status_code == 200


def test_folder_and_document_names_are_normalised_once_at_the_boundary(client, backend):
    headers = bearer(owner_key(client))
    made = client.post("/api/v1/document/create-folder", headers=headers, json={"name": "reports\u3000"})
    assert made.status_code == 200 and made.json() == {"success": True, "message": None}, made.text
    # the look-alike was `reports`: creating it again is a conflict, not a second folder
    assert client.post("/api/v1/document/create-folder", headers=headers, json={"name": "reports"}).status_code == 409
    doc = _raw(client, headers, "Quarterly", "Revenue rose by four percent in the third quarter.")
    moved = client.post("/api/v1/document/move-files", headers=headers,
                        json={"files": [{"from": doc["location"], "to": f"ｒｅｐｏｒｔｓ\u3000/{doc['name']}"}]})
    assert moved.status_code == 200 and moved.json()["success"] is True, moved.text
    listed = client.get("/api/v1/documents/folder/reports", headers=headers).json()
    assert [d["location"] for d in listed["documents"]] == [f"reports/{doc['name']}"], listed
    same = client.get("/api/v1/documents/folder/reports%E3%80%80", headers=headers).json()
    assert [d["location"] for d in same["documents"]] == [f"reports/{doc['name']}"], same
    uploaded = client.post("/api/v1/document/upload/%EF%BD%92%EF%BD%85%EF%BD%90%EF%BD%8F%EF%BD%92%EF%BD%94%EF%BD%93",
                           headers=headers, files={"file": ("note.txt", b"Minutes of the board meeting.", "text/plain")})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["documents"][0]["location"].startswith("reports/")
    folders = {f["name"] for f in client.get("/api/v1/documents", headers=headers).json()["localFiles"]["items"]}
    assert "reports" in folders and not any("\u3000" in f or f != f.strip() for f in folders), folders
    before = len(backend.raw_events())
    for name in ("rep\u202eorts", "rep\u200borts", "rep\u0007orts"):
        refused = client.post("/api/v1/document/create-folder", headers=headers, json={"name": name})
        assert refused.status_code == 400 and refused.json()["success"] is False, (name, refused.text)
        hidden = client.post("/api/v1/document/move-files", headers=headers,
                             json={"files": [{"from": f"reports/{doc['name']}", "to": f"{name}/{doc['name']}"}]})
        assert hidden.status_code == 400, (name, hidden.text)
    assert len(backend.raw_events()) == before
