"""User use cases on the in-memory store: given users, when a command, then the new events
(acted by the caller, with its key and the request's correlation id) or an error and nothing stored."""

from __future__ import annotations

import pytest

from application.apikeys import CreateApiKey, create_api_key, list_api_keys
from application.users import (
    CreateUser, DeleteUser, EnableMultiUser, RevokeSessions, UpdatePreferences, UpdateUser, create_user, delete_user,
    enable_multi_user, revoke_sessions, update_preferences, update_user,
)
from domain.apikeys import ApiKey
from domain.errors import InvalidInput, PermissionDenied, UserNotFound
from domain.system import System
from domain.users import User, UserDirectory
from tests.support.memory import (
    PASSWORD, add_user, head, memory_runtime, new_events, owner, stamps, own_key,
)


def test_create_user_records_registration_and_directory_entry_acted_by_the_key(tmp_path):
    with memory_runtime(tmp_path) as rt:
        admin = own_key(rt, owner(rt))
        before = head(rt)
        row = create_user(rt.ctx, CreateUser(principal=admin, correlation_id="c1", username="ada", password=PASSWORD,
                                             role="manager"))
        events = new_events(rt, before)
        assert [type(e) for e in events] == [UserDirectory.Entered, User.Registered]
        assert stamps(events) == {(1, admin.api_key_id, "c1")}
        assert (row.username, row.role) == ("ada", "manager")
        assert PASSWORD not in repr(events)  # only the hash is recorded


def test_a_manager_cannot_make_an_admin_and_nothing_is_stored(tmp_path):
    with memory_runtime(tmp_path) as rt:
        manager = add_user(rt, "mia", "manager")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            create_user(rt.ctx, CreateUser(principal=manager, correlation_id="c1", username="eve", password=PASSWORD,
                                           role="admin"))
        with pytest.raises(InvalidInput):
            create_user(rt.ctx, CreateUser(principal=manager, correlation_id="c2", username="eve", password="short"))
        assert new_events(rt, before) == []
        assert rt.ctx.accounts.user_named("eve") is None


def test_a_default_user_cannot_manage_users(tmp_path):
    with memory_runtime(tmp_path) as rt:
        dan = add_user(rt, "dan")
        other = add_user(rt, "other")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            update_user(rt.ctx, UpdateUser(principal=dan, correlation_id="c1", user_id=other.user_id, suspended=True))
        assert new_events(rt, before) == []


def test_suspending_a_user_is_recorded_and_their_keys_stop_at_once(tmp_path):
    with memory_runtime(tmp_path) as rt:
        dan = add_user(rt, "dan")
        create_api_key(rt.ctx, CreateApiKey(principal=dan, correlation_id="k"))
        before = head(rt)
        row = update_user(rt.ctx, UpdateUser(principal=owner(rt), correlation_id="c1", user_id=dan.user_id,
                                             suspended=True, bio="gone fishing"))
        events = new_events(rt, before)
        assert [type(e) for e in events] == [User.Suspended, User.ProfileUpdated]
        assert stamps(events) == {(1, None, "c1")}
        assert row.suspended and row.bio == "gone fishing"
        with pytest.raises(InvalidInput):  # a suspended user gets no new key
            create_api_key(rt.ctx, CreateApiKey(principal=owner(rt), correlation_id="k2", user_id=dan.user_id))


def test_nobody_suspends_or_deletes_themselves(tmp_path):
    with memory_runtime(tmp_path) as rt:
        me = owner(rt)
        before = head(rt)
        with pytest.raises(InvalidInput):
            update_user(rt.ctx, UpdateUser(principal=me, correlation_id="c1", user_id=me.user_id, suspended=True))
        with pytest.raises(InvalidInput):
            delete_user(rt.ctx, DeleteUser(principal=me, correlation_id="c2", user_id=me.user_id))
        with pytest.raises(UserNotFound):
            update_user(rt.ctx, UpdateUser(principal=me, correlation_id="c3", user_id=99, bio="x"))
        assert new_events(rt, before) == []


def test_deleting_a_user_revokes_their_keys_in_the_same_save(tmp_path):
    with memory_runtime(tmp_path) as rt:
        dan = add_user(rt, "dan")
        key = create_api_key(rt.ctx, CreateApiKey(principal=dan, correlation_id="k"))
        before = head(rt)
        delete_user(rt.ctx, DeleteUser(principal=owner(rt), correlation_id="c1", user_id=dan.user_id))
        events = new_events(rt, before)
        assert [type(e) for e in events] == [UserDirectory.Left, User.Deleted, ApiKey.Revoked]
        assert stamps(events) == {(1, None, "c1")}
        assert rt.ctx.accounts.user_named("dan") is None
        assert not list_api_keys(rt.ctx, include_inactive=True)[0].active and key.key.user_id == dan.user_id


def test_revoking_sessions_bumps_the_token_version(tmp_path):
    with memory_runtime(tmp_path) as rt:
        dan = add_user(rt, "dan")
        version = rt.ctx.accounts.user(dan.user_id).token_version
        before = head(rt)
        revoke_sessions(rt.ctx, RevokeSessions(principal=dan, correlation_id="c1", user_id=dan.user_id))
        events = new_events(rt, before)
        assert [type(e) for e in events] == [User.SessionsRevoked]
        assert stamps(events) == {(dan.user_id, None, "c1")}
        assert rt.ctx.accounts.user(dan.user_id).token_version == version + 1


def test_enable_multi_user_names_the_owner_and_only_admins_may(tmp_path):
    with memory_runtime(tmp_path) as rt:
        dan = add_user(rt, "dan")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            enable_multi_user(rt.ctx, EnableMultiUser(principal=dan, correlation_id="c0", username="x", password=PASSWORD))
        assert new_events(rt, before) == []
        row = enable_multi_user(rt.ctx, EnableMultiUser(principal=owner(rt), correlation_id="c1", username="root",
                                                        password=PASSWORD))
        events = new_events(rt, before)
        assert [type(e) for e in events] == [System.MultiUserModeEnabled, UserDirectory.NameChanged, User.Renamed,
                                             User.PasswordChanged]
        assert stamps(events) == {(1, None, "c1")}
        assert row.username == "root" and rt.ctx.accounts.is_multi_user()


def test_preferences_managers_change_only_theirs_and_default_users_none(tmp_path):
    with memory_runtime(tmp_path) as rt:
        manager = add_user(rt, "mia", "manager")
        dan = add_user(rt, "dan")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            update_preferences(rt.ctx, UpdatePreferences(principal=dan, correlation_id="c0", values={"footer_data": "x"}))
        assert new_events(rt, before) == []
        known = update_preferences(rt.ctx, UpdatePreferences(principal=owner(rt), correlation_id="c1",
                                                            values={"footer_data": "[]"}))
        events = new_events(rt, before)
        assert known == {"footer_data": "[]"}
        assert [type(e) for e in events] == [System.PreferencesUpdated] and stamps(events) == {(1, None, "c1")}
        assert update_preferences(rt.ctx, UpdatePreferences(principal=manager, correlation_id="c2",
                                                            values={"not_a_label": "x"})) == {}
