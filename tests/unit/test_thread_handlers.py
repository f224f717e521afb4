"""Thread use cases on the in-memory store: given a workspace (made through its handler), when
a thread command, then the new events with the actor's ids and correlation id, or the error
and no new events. Covers slug uniqueness per workspace, a thread belonging to its workspace
and its user, who may create threads for others, and the scopes a key needs."""

from __future__ import annotations

import pytest

from application.threads import (
    CreateThread, DeleteThread, UpdateThread, create_thread, delete_thread, list_threads, update_thread,
)
from application.workspaces import CreateWorkspace, SetMembers, create_workspace, set_members
from domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from domain.principal import Principal
from tests.support.memory import head, kinds, memory_runtime, multi_user, new_events, owner, stamps, user, with_key


def _workspace(rt, name: str = "Research") -> str:
    return create_workspace(rt.ctx, CreateWorkspace(principal=owner(rt), correlation_id="given", name=name)).slug


def _thread(rt, principal: Principal, workspace: str, slug: str | None = None, cid: str = "given"):
    return create_thread(rt.ctx, CreateThread(principal=principal, correlation_id=cid, workspace_slug=workspace,
                                              slug=slug))


def test_create_records_the_thread_and_its_slug_claim_with_the_actor(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        keyed = with_key(rt, owner(rt))
        before = head(rt)
        row = create_thread(rt.ctx, CreateThread(principal=keyed, correlation_id="c1", workspace_slug=ws,
                                                 name="Otters", slug="otters"))
        events = new_events(rt, before)
        assert kinds(events) == ["Sequence.Started", "Sequence.Reserved", "Thread.Created", "ThreadSlug.Claimed"]
        assert stamps(events) == {(1, keyed.api_key_id, "c1")}
        assert (row.name, row.slug, row.user_id) == ("Otters", "otters", 1)
        assert [t.slug for t in list_threads(rt.ctx, owner(rt), ws)] == ["otters"]


def test_a_thread_without_name_or_slug_gets_defaults(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        first, second = _thread(rt, owner(rt), ws), _thread(rt, owner(rt), ws)
        assert first.name == second.name == "Thread"
        assert first.slug != second.slug and first.id != second.id


def test_a_slug_is_unique_within_its_workspace_only(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws, other = _workspace(rt), _workspace(rt, "Other")
        _thread(rt, owner(rt), ws, "notes")
        before = head(rt)
        with pytest.raises(Conflict):
            _thread(rt, owner(rt), ws, "notes", cid="c1")
        assert new_events(rt, before) == []
        assert _thread(rt, owner(rt), other, "notes").slug == "notes"


@pytest.mark.parametrize("slug", ["!!!", "---"])
def test_a_bad_slug_is_refused_and_records_nothing(tmp_path, slug):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        before = head(rt)
        with pytest.raises(InvalidInput):
            _thread(rt, owner(rt), ws, slug)
        assert new_events(rt, before) == []


def test_only_admins_create_threads_for_another_user(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        dana, erin = user(rt, "dana", "manager"), user(rt, "erin")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            create_thread(rt.ctx, CreateThread(principal=dana, correlation_id="c1", workspace_slug=ws,
                                               user_id=erin.user_id))
        with pytest.raises(NotFound):
            create_thread(rt.ctx, CreateThread(principal=owner(rt), correlation_id="c2", workspace_slug=ws,
                                               user_id=999))
        assert new_events(rt, before) == []
        row = create_thread(rt.ctx, CreateThread(principal=owner(rt), correlation_id="c3", workspace_slug=ws,
                                                 user_id=erin.user_id))
        assert row.user_id == erin.user_id
        assert [t.id for t in list_threads(rt.ctx, erin, ws)] == [row.id]
        assert list_threads(rt.ctx, owner(rt), ws) == []


def test_a_key_needs_the_chat_scope_to_create_and_write_to_change(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        reader, chatter = with_key(rt, owner(rt), ("read",)), with_key(rt, owner(rt), ("chat",))
        before = head(rt)
        with pytest.raises(PermissionDenied, match="'chat' scope"):
            _thread(rt, reader, ws)
        assert new_events(rt, before) == []
        row = _thread(rt, chatter, ws, "mine")
        before = head(rt)
        with pytest.raises(PermissionDenied, match="'write' scope"):
            update_thread(rt.ctx, UpdateThread(principal=chatter, correlation_id="c1", workspace_slug=ws,
                                               slug=row.slug, name="Renamed"))
        with pytest.raises(PermissionDenied, match="'write' scope"):
            delete_thread(rt.ctx, DeleteThread(principal=chatter, correlation_id="c2", workspace_slug=ws,
                                               slug=row.slug))
        assert new_events(rt, before) == []


def test_a_default_user_outside_the_workspace_does_not_find_it(tmp_path):
    with memory_runtime(tmp_path) as rt:
        multi_user(rt)
        ws = _workspace(rt)
        dana = user(rt)
        before = head(rt)
        with pytest.raises(NotFound):
            _thread(rt, dana, ws)
        assert new_events(rt, before) == []
        set_members(rt.ctx, SetMembers(principal=owner(rt), correlation_id="given", slug=ws,
                                       user_ids=[dana.user_id], replace=False))
        assert _thread(rt, dana, ws, "dana").user_id == dana.user_id


def test_rename_records_the_new_name_and_refuses_a_bad_one(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        row = _thread(rt, owner(rt), ws, "t1")
        before = head(rt)
        renamed = update_thread(rt.ctx, UpdateThread(principal=owner(rt), correlation_id="c1", workspace_slug=ws,
                                                     slug="t1", name="Sea otters"))
        events = new_events(rt, before)
        assert kinds(events) == ["Thread.Renamed"] and stamps(events) == {(1, None, "c1")}
        assert (renamed.id, renamed.name) == (row.id, "Sea otters")
        before = head(rt)
        update_thread(rt.ctx, UpdateThread(principal=owner(rt), correlation_id="c2", workspace_slug=ws,
                                           slug="t1", name="Sea otters"))  # unchanged: nothing to record
        with pytest.raises(InvalidInput):
            update_thread(rt.ctx, UpdateThread(principal=owner(rt), correlation_id="c3", workspace_slug=ws,
                                               slug="t1", name="   "))
        assert new_events(rt, before) == []


def test_a_thread_belongs_to_its_workspace_and_its_user(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws, other = _workspace(rt), _workspace(rt, "Other")
        _thread(rt, owner(rt), ws, "t1")
        dana = user(rt, "dana", "manager")
        mine = _thread(rt, dana, ws, "dana-thread")
        before = head(rt)
        with pytest.raises(NotFound):  # the same slug through another workspace
            update_thread(rt.ctx, UpdateThread(principal=owner(rt), correlation_id="c1", workspace_slug=other,
                                               slug="t1", name="Moved?"))
        with pytest.raises(NotFound):
            delete_thread(rt.ctx, DeleteThread(principal=owner(rt), correlation_id="c2", workspace_slug=other,
                                               slug="t1"))
        with pytest.raises(NotFound):  # another user's thread is not found, like an absent one
            delete_thread(rt.ctx, DeleteThread(principal=dana, correlation_id="c3", workspace_slug=ws, slug="t1"))
        with pytest.raises(NotFound):
            update_thread(rt.ctx, UpdateThread(principal=dana, correlation_id="c4", workspace_slug=ws, slug="t1",
                                               name="Mine now"))
        assert new_events(rt, before) == []
        update_thread(rt.ctx, UpdateThread(principal=owner(rt), correlation_id="c5", workspace_slug=ws,
                                           slug=mine.slug, name="An admin may"))
        assert kinds(new_events(rt, before)) == ["Thread.Renamed"]


def test_delete_records_the_deletion_and_the_thread_is_gone(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = _workspace(rt)
        _thread(rt, owner(rt), ws, "t1")
        before = head(rt)
        delete_thread(rt.ctx, DeleteThread(principal=owner(rt), correlation_id="c1", workspace_slug=ws, slug="t1"))
        events = new_events(rt, before)
        assert kinds(events) == ["Thread.Deleted"] and stamps(events) == {(1, None, "c1")}
        assert list_threads(rt.ctx, owner(rt), ws) == []
        with pytest.raises(NotFound):
            delete_thread(rt.ctx, DeleteThread(principal=owner(rt), correlation_id="c2", workspace_slug=ws,
                                               slug="t1"))
        with pytest.raises(NotFound):
            delete_thread(rt.ctx, DeleteThread(principal=owner(rt), correlation_id="c3", workspace_slug="nope",
                                               slug="t1"))
        assert kinds(new_events(rt, before)) == ["Thread.Deleted"]
