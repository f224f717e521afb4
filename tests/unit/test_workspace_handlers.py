"""Workspace use cases on the in-memory store: given events (made through other handlers),
when a command, then the new events with the actor's ids and the request's correlation id,
or the error and no new events. Covers who may change workspaces, slug uniqueness, bad
input, membership, embedding and pinning."""

from __future__ import annotations

import pytest

from application.documents import UploadRawText, upload_raw_text
from application.workspaces import (
    CreateWorkspace, DeleteWorkspace, SetMembers, UpdateEmbeddings, UpdatePin, UpdateWorkspace, create_workspace,
    delete_workspace, get_workspace, list_members, list_workspaces, set_members, update_embeddings, update_pin,
    update_workspace,
)
from application.access import visible_workspace
from domain.errors import InvalidInput, NotFound, PermissionDenied
from domain.principal import Principal
from tests.support.memory import head, kinds, memory_runtime, multi_user, new_events, owner, stamps, user, with_key


def _create(rt, principal: Principal, name: str = "Research", cid: str = "given") -> str:
    return create_workspace(rt.ctx, CreateWorkspace(principal=principal, correlation_id=cid, name=name)).slug


def _upload(rt, title: str = "otters", text: str = "Sea otters hold hands while they sleep.") -> str:
    stored = upload_raw_text(rt.ctx, UploadRawText(principal=owner(rt), correlation_id="given-doc", text=text,
                                                   metadata={"title": title}))
    return stored.document.docpath


def test_create_records_the_workspace_and_its_slug_with_the_actor(tmp_path):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        row = create_workspace(rt.ctx, CreateWorkspace(principal=owner(rt), correlation_id="c1", name="Research Lab",
                                                       settings={"topN": 7}))
        events = new_events(rt, before)
        assert kinds(events) == ["WorkspaceDirectory.Opened", "WorkspaceDirectory.Listed", "Workspace.Created"]
        assert stamps(events) == {(1, None, "c1")}
        assert (row.slug, row.name, row.settings["topN"]) == ("research-lab", "Research Lab", 7)
        assert [w.slug for w in list_workspaces(rt.ctx, owner(rt))] == ["research-lab"]


def test_create_through_a_key_records_the_key_id(tmp_path):
    with memory_runtime(tmp_path) as rt:
        keyed = with_key(rt, owner(rt))
        before = head(rt)
        _create(rt, keyed, cid="c2")
        assert stamps(new_events(rt, before)) == {(1, keyed.api_key_id, "c2")}
        assert keyed.api_key_id is not None


def test_a_taken_slug_gets_a_random_suffix_and_a_freed_one_is_reused(tmp_path):
    with memory_runtime(tmp_path) as rt:
        first = _create(rt, owner(rt), "Notes")
        second = _create(rt, owner(rt), "Notes")
        assert first == "notes" and second.startswith("notes-") and second != first
        before = head(rt)
        delete_workspace(rt.ctx, DeleteWorkspace(principal=owner(rt), correlation_id="c3", slug=first))
        events = new_events(rt, before)
        assert kinds(events) == ["WorkspaceDirectory.Unlisted", "Workspace.Deleted"]
        assert stamps(events) == {(1, None, "c3")}
        assert get_workspace(rt.ctx, first) is None
        assert _create(rt, owner(rt), "Notes") == "notes"


def test_a_default_user_cannot_create_update_or_delete_workspaces(tmp_path):
    with memory_runtime(tmp_path) as rt:
        slug = _create(rt, owner(rt))
        dana = user(rt)
        before = head(rt)
        with pytest.raises(PermissionDenied):
            create_workspace(rt.ctx, CreateWorkspace(principal=dana, correlation_id="c1", name="Mine"))
        with pytest.raises(PermissionDenied):
            update_workspace(rt.ctx, UpdateWorkspace(principal=dana, correlation_id="c2", slug=slug,
                                                     changes={"topN": 2}))
        with pytest.raises(PermissionDenied):
            delete_workspace(rt.ctx, DeleteWorkspace(principal=dana, correlation_id="c3", slug=slug))
        assert new_events(rt, before) == []


def test_a_read_only_key_cannot_create_a_workspace(tmp_path):
    with memory_runtime(tmp_path) as rt:
        reader = with_key(rt, owner(rt), scopes=("read",))
        before = head(rt)
        with pytest.raises(PermissionDenied, match="'write' scope"):
            _create(rt, reader)
        assert new_events(rt, before) == []


@pytest.mark.parametrize("name", [None, "x" * 300])
def test_a_bad_name_is_refused_and_records_nothing(tmp_path, name):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        with pytest.raises(InvalidInput):
            create_workspace(rt.ctx, CreateWorkspace(principal=owner(rt), correlation_id="c1", name=name))
        assert new_events(rt, before) == []


def test_update_records_only_real_changes(tmp_path):
    with memory_runtime(tmp_path) as rt:
        slug = _create(rt, owner(rt))
        before = head(rt)
        row, changed = update_workspace(rt.ctx, UpdateWorkspace(principal=owner(rt), correlation_id="c1", slug=slug,
                                                                changes={"openAiTemp": 0.5, "unknownKey": 1}))
        events = new_events(rt, before)
        assert changed and kinds(events) == ["Workspace.Updated"] and stamps(events) == {(1, None, "c1")}
        assert row.settings["openAiTemp"] == 0.5
        again = head(rt)
        _, changed = update_workspace(rt.ctx, UpdateWorkspace(principal=owner(rt), correlation_id="c2", slug=slug,
                                                              changes={"openAiTemp": 0.5}))
        assert not changed and new_events(rt, again) == []


def test_update_refuses_bad_values_and_unknown_workspaces(tmp_path):
    with memory_runtime(tmp_path) as rt:
        slug = _create(rt, owner(rt))
        before = head(rt)
        with pytest.raises(InvalidInput):
            update_workspace(rt.ctx, UpdateWorkspace(principal=owner(rt), correlation_id="c1", slug=slug,
                                                     changes={"topN": "many"}))
        with pytest.raises(NotFound):
            update_workspace(rt.ctx, UpdateWorkspace(principal=owner(rt), correlation_id="c2", slug="nope",
                                                     changes={"topN": 2}))
        with pytest.raises(NotFound):
            delete_workspace(rt.ctx, DeleteWorkspace(principal=owner(rt), correlation_id="c3", slug="nope"))
        assert new_events(rt, before) == []


def test_members_are_set_by_admins_and_bound_what_a_default_user_sees(tmp_path):
    with memory_runtime(tmp_path) as rt:
        multi_user(rt)
        shared, private = _create(rt, owner(rt), "Shared"), _create(rt, owner(rt), "Private")
        dana = user(rt)
        row = get_workspace(rt.ctx, shared)
        assert row is not None
        before = head(rt)
        members = set_members(rt.ctx, SetMembers(principal=owner(rt), correlation_id="c1", slug=shared,
                                                 user_ids=[dana.user_id, 999], replace=False))
        events = new_events(rt, before)
        assert kinds(events) == ["Workspace.MembersChanged"] and stamps(events) == {(1, None, "c1")}
        assert [m.id for m in members] == [dana.user_id]
        assert [m.id for m in list_members(rt.ctx, owner(rt), row.id)] == [dana.user_id]
        assert [w.slug for w in list_workspaces(rt.ctx, dana)] == [shared]
        with pytest.raises(NotFound):  # not 403: a default user cannot probe other slugs
            visible_workspace(rt.ctx, dana, private)


def test_setting_members_is_refused_to_default_users_and_for_unknown_users(tmp_path):
    with memory_runtime(tmp_path) as rt:
        slug = _create(rt, owner(rt))
        dana = user(rt)
        before = head(rt)
        with pytest.raises(PermissionDenied):
            set_members(rt.ctx, SetMembers(principal=dana, correlation_id="c1", slug=slug,
                                           user_ids=[dana.user_id], replace=False))
        with pytest.raises(NotFound, match="No valid user IDs"):
            set_members(rt.ctx, SetMembers(principal=owner(rt), correlation_id="c2", slug=slug,
                                           user_ids=[999], replace=True))
        with pytest.raises(NotFound):
            set_members(rt.ctx, SetMembers(principal=owner(rt), correlation_id="c3", workspace_id=999,
                                           user_ids=[dana.user_id], replace=False))
        assert new_events(rt, before) == []


def test_embedding_links_a_document_and_unembedding_removes_the_link(tmp_path):
    with memory_runtime(tmp_path) as rt:
        slug, docpath = _create(rt, owner(rt)), _upload(rt)
        before = head(rt)
        row, failures = update_embeddings(rt.ctx, UpdateEmbeddings(principal=owner(rt), correlation_id="c1",
                                                                   slug=slug, adds=[docpath, "custom-documents/no.json"]))
        events = new_events(rt, before)
        assert kinds(events) == ["Workspace.DocumentsEmbedded"] and stamps(events) == {(1, None, "c1")}
        assert [f.docpath for f in failures] == ["custom-documents/no.json"]
        assert [d.docpath for d in rt.ctx.library.workspace_documents(row.id)] == [docpath]
        assert rt.ctx.content.index.count(row.aggregate_id) == 1  # one short chunk
        before = head(rt)
        update_embeddings(rt.ctx, UpdateEmbeddings(principal=owner(rt), correlation_id="c2", slug=slug,
                                                   deletes=[docpath]))
        events = new_events(rt, before)
        assert kinds(events) == ["Workspace.DocumentsRemoved"] and stamps(events) == {(1, None, "c2")}
        assert rt.ctx.library.workspace_documents(row.id) == []
        assert rt.ctx.content.index.count(row.aggregate_id) == 0


def test_embedding_nothing_valid_records_nothing(tmp_path):
    with memory_runtime(tmp_path) as rt:
        slug = _create(rt, owner(rt))
        before = head(rt)
        _, failures = update_embeddings(rt.ctx, UpdateEmbeddings(principal=owner(rt), correlation_id="c1", slug=slug,
                                                                 adds=["custom-documents/absent.json"]))
        assert [f.error for f in failures] == ["Document not found"]
        with pytest.raises(NotFound):
            update_embeddings(rt.ctx, UpdateEmbeddings(principal=owner(rt), correlation_id="c2", slug="nope",
                                                       adds=["custom-documents/absent.json"]))
        with pytest.raises(PermissionDenied):
            update_embeddings(rt.ctx, UpdateEmbeddings(principal=user(rt), correlation_id="c3", slug=slug))
        assert kinds(new_events(rt, before)) == ["UserDirectory.Entered", "User.Registered"]


def test_pinning_an_embedded_document_is_recorded_and_an_unembedded_one_refused(tmp_path):
    with memory_runtime(tmp_path) as rt:
        slug, docpath = _create(rt, owner(rt)), _upload(rt)
        other = _upload(rt, "beavers", "Beavers build dams.")
        update_embeddings(rt.ctx, UpdateEmbeddings(principal=owner(rt), correlation_id="given", slug=slug,
                                                   adds=[docpath]))
        before = head(rt)
        update_pin(rt.ctx, UpdatePin(principal=owner(rt), correlation_id="c1", slug=slug, docpath=docpath, pinned=True))
        events = new_events(rt, before)
        assert kinds(events) == ["Workspace.DocumentPinned"] and stamps(events) == {(1, None, "c1")}
        row = get_workspace(rt.ctx, slug)
        assert row is not None and [d.pinned for d in rt.ctx.library.workspace_documents(row.id)] == [True]
        before = head(rt)
        with pytest.raises(NotFound):
            update_pin(rt.ctx, UpdatePin(principal=owner(rt), correlation_id="c2", slug=slug, docpath=other,
                                         pinned=True))
        assert new_events(rt, before) == []
