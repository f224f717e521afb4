"""Domain rules, tested on the aggregates directly: given some past events, when a command
runs, then it records these events (or refuses with this error). No store is involved."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import domain.apikeys
import domain.chats
import domain.documents
import domain.embeds
import domain.threads
import domain.workspaces
import domain.invites
import domain.sequence
import domain.system
import domain.users
from domain.apikeys import MAX_RATE_LIMIT, ApiKey, check_rate_limit, check_scopes, parse_duration
from domain.audited import Audited, event_classes
from domain.errors import Conflict, InvalidInput, LastAdmin, UsernameTaken
from domain.invites import Invite
from domain.principal import ALL_SCOPES, Actor, Role
from domain.sequence import Sequence
from domain.system import System
from domain.users import (
    PASSWORD_MAX, PASSWORD_MIN, USERNAME_MAX, USERNAME_MIN, User, UserDirectory, check_password,
    check_role, check_username,
)

ACTOR = Actor(user_id=7, api_key_id=42, correlation_id="req-7f3a")
OTHER = Actor(user_id=9, api_key_id=None, correlation_id="req-other")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


# helpers ------------------------------------------------------------------------------------
def given_user(user_id: int, username: str, role: Role = Role.DEFAULT) -> User:
    user = User.register(OTHER, user_id, username, role, "argon2-hash")
    user.collect_events()
    return user


def given_directory(*users: User) -> UserDirectory:
    directory = UserDirectory.open(OTHER)
    for user in users:
        directory.enter(OTHER, user)
    directory.collect_events()
    return directory


def given_key(expires_at: datetime | None = None) -> ApiKey:
    key = ApiKey.issue(OTHER, 3, 7, "sha256-of-secret", "sk-abcdefgh", expires_at=expires_at)
    key.collect_events()
    return key


def given_invite() -> Invite:
    invite = Invite.create(OTHER, 1, "sha256-of-code", "abcd", [1, 2])
    invite.collect_events()
    return invite


def given_system() -> System:
    system = System.install(OTHER, owner_user_id=1)
    system.collect_events()
    return system


def event_names(aggregate: Any) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]


# usernames, passwords, roles ----------------------------------------------------------------
@pytest.mark.parametrize(
    "username",
    ["ab", "bob", "b0b", "jane.doe", "jane_doe", "jane-doe", "jane@example.com", "a" * USERNAME_MAX],
)
def test_a_well_formed_username_is_accepted(username: str) -> None:
    assert check_username(username) == username


@pytest.mark.parametrize(
    "username",
    [
        "", "a", "a" * (USERNAME_MAX + 1), "Bob", "1bob", "_bob", ".bob", "-bob", "@bob", "bo b",
        "bob!", "bob/x", "böb", " bob", "bob ", "bob\t", "a" * USERNAME_MAX + "\n",
    ],
)
def test_a_malformed_username_is_refused(username: str) -> None:
    with pytest.raises(InvalidInput):
        check_username(username)


def test_a_username_with_a_trailing_newline_is_refused() -> None:
    # BUG: USERNAME_RE ends in `$`, which also matches just before a final "\n", so
    # "bob\n" passes check_username (and User.register) and can sit next to "bob".
    try:
        accepted = check_username("bob\n")
    except InvalidInput:
        return
    pytest.fail(
        f"BUG: check_username accepted {accepted!r}: USERNAME_RE uses `$`, which matches before a trailing "
        "newline; use re.fullmatch or `\\Z`"
    )


def test_the_username_length_bounds_are_two_and_sixty_four() -> None:
    assert (USERNAME_MIN, USERNAME_MAX) == (2, 64)
    assert check_username("a" * 2) and check_username("a" * 64)
    for length in (1, 65):
        with pytest.raises(InvalidInput):
            check_username("a" * length)


def test_registering_a_user_checks_the_username() -> None:
    with pytest.raises(InvalidInput):
        User.register(ACTOR, 2, "Not Valid", Role.DEFAULT, "hash")


def test_renaming_a_user_checks_the_new_username_and_records_nothing_for_the_same_name() -> None:
    user = given_user(2, "alice")
    with pytest.raises(InvalidInput):
        user.rename(ACTOR, "A")
    user.rename(ACTOR, "alice")
    assert event_names(user) == []
    user.rename(ACTOR, "alicia")
    assert event_names(user) == ["Renamed"]
    assert user.username == "alicia"


@pytest.mark.parametrize("length", [PASSWORD_MIN, PASSWORD_MIN + 1, PASSWORD_MAX])
def test_a_password_of_allowed_length_is_accepted(length: int) -> None:
    assert check_password("p" * length) == "p" * length


@pytest.mark.parametrize("length", [0, 1, PASSWORD_MIN - 1, PASSWORD_MAX + 1, 10_000])
def test_a_password_too_short_or_too_long_is_refused(length: int) -> None:
    with pytest.raises(InvalidInput):
        check_password("p" * length)


def test_the_password_length_bounds_are_eight_and_two_hundred_fifty() -> None:
    assert (PASSWORD_MIN, PASSWORD_MAX) == (8, 250)


@pytest.mark.parametrize("text, role", [("admin", Role.ADMIN), ("manager", Role.MANAGER), ("default", Role.DEFAULT)])
def test_a_known_role_is_parsed(text: str, role: Role) -> None:
    assert check_role(text) is role


@pytest.mark.parametrize("text", ["", "Admin", "ADMIN", "root", "superuser", " admin", "admin "])
def test_an_unknown_role_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        check_role(text)


def test_changing_to_the_same_role_records_nothing() -> None:
    user = given_user(2, "alice", Role.MANAGER)
    user.change_role(ACTOR, Role.MANAGER)
    assert event_names(user) == []
    user.change_role(ACTOR, Role.ADMIN)
    assert event_names(user) == ["RoleChanged"]


def test_suspending_and_deleting_twice_record_one_event_each() -> None:
    user = given_user(2, "alice")
    user.suspend(ACTOR)
    user.suspend(ACTOR)
    user.unsuspend(ACTOR)
    user.unsuspend(ACTOR)
    user.delete(ACTOR)
    user.delete(ACTOR)
    assert event_names(user) == ["Suspended", "Unsuspended", "Deleted"]


def test_sessions_are_invalidated_by_a_password_change_a_suspension_and_a_deletion() -> None:
    user = given_user(2, "alice")
    assert user.token_version == 1
    user.change_password(ACTOR, "new-hash")
    user.revoke_sessions(ACTOR)
    user.suspend(ACTOR)
    user.delete(ACTOR)
    assert user.token_version == 5


# UserDirectory ------------------------------------------------------------------------------
def test_the_directory_refuses_a_second_user_with_a_taken_username() -> None:
    directory = given_directory(given_user(1, "admin", Role.ADMIN), given_user(2, "alice"))
    with pytest.raises(UsernameTaken):
        directory.enter(ACTOR, given_user(3, "alice"))
    assert event_names(directory) == []


def test_the_directory_hands_out_the_next_user_id_and_records_an_entry() -> None:
    directory = given_directory(given_user(1, "admin", Role.ADMIN))
    assert directory.next_user_id() == 2
    directory.enter(ACTOR, given_user(2, "alice"))
    assert event_names(directory) == ["Entered"]
    assert directory.next_user_id() == 3
    assert directory.id_of("alice") == 2


def test_the_directory_refuses_renaming_to_a_taken_username() -> None:
    directory = given_directory(given_user(1, "admin", Role.ADMIN), given_user(2, "alice"), given_user(3, "bob"))
    with pytest.raises(UsernameTaken):
        directory.rename(ACTOR, 3, "bob", "alice")
    assert event_names(directory) == []


def test_a_rename_frees_the_old_username() -> None:
    directory = given_directory(given_user(1, "admin", Role.ADMIN), given_user(2, "alice"))
    directory.rename(ACTOR, 2, "alice", "alicia")
    directory.rename(ACTOR, 2, "alicia", "alicia")  # same name: nothing to record
    assert event_names(directory) == ["NameChanged"]
    assert directory.id_of("alice") is None and directory.id_of("alicia") == 2
    directory.enter(ACTOR, given_user(3, "alice"))
    assert event_names(directory) == ["Entered"]


def test_suspending_the_last_active_admin_is_refused() -> None:
    admin = given_user(1, "admin", Role.ADMIN)
    directory = given_directory(admin, given_user(2, "alice"))
    admin.suspend(ACTOR)
    with pytest.raises(LastAdmin):
        directory.note_admin_status(ACTOR, admin)
    assert event_names(directory) == []


def test_demoting_the_last_active_admin_is_refused() -> None:
    admin = given_user(1, "admin", Role.ADMIN)
    directory = given_directory(admin)
    admin.change_role(ACTOR, Role.MANAGER)
    with pytest.raises(LastAdmin):
        directory.note_admin_status(ACTOR, admin)
    assert event_names(directory) == []


def test_demoting_an_admin_is_allowed_while_another_active_admin_remains() -> None:
    first, second = given_user(1, "admin", Role.ADMIN), given_user(2, "deputy", Role.ADMIN)
    directory = given_directory(first, second)
    second.change_role(ACTOR, Role.DEFAULT)
    directory.note_admin_status(ACTOR, second)
    events = directory.collect_events()
    assert [type(e).__name__ for e in events] == ["AdminStatusChanged"]
    assert (events[0].user_id, events[0].active_admin) == (2, False)
    assert directory.active_admins == {1}
    # and now the remaining one is the last: suspending it is refused
    first.suspend(ACTOR)
    with pytest.raises(LastAdmin):
        directory.note_admin_status(ACTOR, first)


def test_suspending_an_admin_is_allowed_while_another_active_admin_remains() -> None:
    first, second = given_user(1, "admin", Role.ADMIN), given_user(2, "deputy", Role.ADMIN)
    directory = given_directory(first, second)
    first.suspend(ACTOR)
    directory.note_admin_status(ACTOR, first)
    assert event_names(directory) == ["AdminStatusChanged"]
    assert directory.active_admins == {2}


def test_a_suspended_admin_counts_again_once_unsuspended() -> None:
    first, second = given_user(1, "admin", Role.ADMIN), given_user(2, "deputy", Role.ADMIN)
    directory = given_directory(first, second)
    second.suspend(ACTOR)
    directory.note_admin_status(ACTOR, second)
    second.unsuspend(ACTOR)
    directory.note_admin_status(ACTOR, second)
    assert directory.active_admins == {1, 2}
    first.suspend(ACTOR)
    directory.note_admin_status(ACTOR, first)  # allowed: the deputy is active again
    assert directory.active_admins == {2}


def test_noting_an_unchanged_admin_status_records_nothing() -> None:
    admin, alice = given_user(1, "admin", Role.ADMIN), given_user(2, "alice")
    directory = given_directory(admin, alice)
    directory.note_admin_status(ACTOR, admin)
    alice.suspend(ACTOR)
    directory.note_admin_status(ACTOR, alice)  # not an admin: no status change
    assert event_names(directory) == []


def test_deleting_the_last_active_admin_is_refused() -> None:
    admin = given_user(1, "admin", Role.ADMIN)
    directory = given_directory(admin, given_user(2, "alice"))
    with pytest.raises(LastAdmin):
        directory.leave(ACTOR, admin)
    assert event_names(directory) == []


def test_deleting_an_admin_is_allowed_while_another_active_admin_remains() -> None:
    first, second = given_user(1, "admin", Role.ADMIN), given_user(2, "deputy", Role.ADMIN)
    directory = given_directory(first, second)
    directory.leave(ACTOR, second)
    assert event_names(directory) == ["Left"]
    assert directory.active_admins == {1}
    assert directory.id_of("deputy") is None


def test_deleting_a_default_user_frees_the_username() -> None:
    admin, alice = given_user(1, "admin", Role.ADMIN), given_user(2, "alice")
    directory = given_directory(admin, alice)
    directory.leave(ACTOR, alice)
    assert event_names(directory) == ["Left"]
    directory.enter(ACTOR, given_user(3, "alice"))
    assert directory.id_of("alice") == 3


# ApiKey -------------------------------------------------------------------------------------
def test_no_scopes_given_means_every_scope() -> None:
    assert check_scopes(None) == ALL_SCOPES


def test_scopes_are_kept_in_canonical_order_without_duplicates() -> None:
    assert check_scopes(["chat", "read", "chat"]) == ("read", "chat")
    assert check_scopes(("admin",)) == ("admin",)


@pytest.mark.parametrize("scopes", [[], (), ["delete"], ["read", "root"], ["READ"], [""]])
def test_an_empty_or_unknown_scope_list_is_refused(scopes: list[str]) -> None:
    with pytest.raises(InvalidInput):
        check_scopes(scopes)


def test_issuing_a_key_with_an_unknown_scope_is_refused() -> None:
    with pytest.raises(InvalidInput):
        ApiKey.issue(ACTOR, 1, 7, "hash", "sk-abcdefgh", scopes=("read", "sudo"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("15m", timedelta(minutes=15)),
        ("2w", timedelta(weeks=2)), ("90s", timedelta(seconds=90)), (" 1d ", timedelta(days=1)),
    ],
)
def test_a_duration_with_a_number_and_a_unit_is_parsed(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "00h", "forever", "10", "", "d", "-1d", "1.5d", "30 d", "30D", "1y", "1234567d",
                                  "999999w", "36526d", "5219w"])
def test_a_zero_or_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


@pytest.mark.parametrize("limit", [None, 1, 60, MAX_RATE_LIMIT])
def test_a_rate_limit_within_bounds_is_accepted(limit: int | None) -> None:
    assert check_rate_limit(limit) == limit


@pytest.mark.parametrize("limit", [0, -1, MAX_RATE_LIMIT + 1])
def test_a_rate_limit_out_of_bounds_is_refused(limit: int) -> None:
    with pytest.raises(InvalidInput):
        check_rate_limit(limit)
    with pytest.raises(InvalidInput):
        ApiKey.issue(ACTOR, 1, 7, "hash", "sk-abcdefgh", rate_limit=limit)


def test_a_key_name_is_trimmed_and_limited() -> None:
    key = ApiKey.issue(ACTOR, 1, 7, "hash", "sk-abcdefgh", name="  ci  ")
    assert key.name == "ci"
    assert ApiKey.issue(ACTOR, 2, 7, "hash", "sk-abcdefgh", name="   ").name is None
    with pytest.raises(InvalidInput):
        ApiKey.issue(ACTOR, 3, 7, "hash", "sk-abcdefgh", name="n" * 201)


def test_revoking_a_key_twice_records_one_event() -> None:
    key = given_key()
    assert key.revoke(ACTOR) is True
    assert key.revoke(ACTOR) is False
    events = key.collect_events()
    assert [type(e).__name__ for e in events] == ["Revoked"]
    assert events[0].reason == "revoked"
    assert key.revoked


def test_a_key_is_marked_expired_only_after_its_expiry() -> None:
    key = given_key(expires_at=T0)
    assert key.mark_expired(ACTOR, T0 - timedelta(microseconds=1)) is False
    assert event_names(key) == []
    assert key.mark_expired(ACTOR, T0) is True
    assert key.mark_expired(ACTOR, T0 + timedelta(days=1)) is False  # already expired
    assert event_names(key) == ["Expired"]


def test_a_key_without_expiry_or_already_revoked_is_never_marked_expired() -> None:
    forever = given_key()
    assert forever.mark_expired(ACTOR, T0 + timedelta(days=10_000)) is False
    revoked = given_key(expires_at=T0)
    revoked.revoke(ACTOR)
    revoked.collect_events()
    assert revoked.mark_expired(ACTOR, T0 + timedelta(days=1)) is False
    assert event_names(forever) == event_names(revoked) == []


# Invite -------------------------------------------------------------------------------------
def test_a_pending_invite_can_be_claimed_once() -> None:
    invite = given_invite()
    invite.claim(ACTOR, user_id=5)
    events = invite.collect_events()
    assert [type(e).__name__ for e in events] == ["Claimed"]
    assert events[0].user_id == 5
    with pytest.raises(Conflict):
        invite.claim(ACTOR, user_id=6)
    assert event_names(invite) == []


def test_a_disabled_invite_cannot_be_claimed() -> None:
    invite = given_invite()
    assert invite.disable(ACTOR) is True
    with pytest.raises(Conflict):
        invite.claim(ACTOR, user_id=5)
    assert event_names(invite) == ["Disabled"]


def test_disabling_an_invite_twice_returns_false_the_second_time() -> None:
    invite = given_invite()
    assert invite.disable(ACTOR) is True
    assert invite.disable(ACTOR) is False
    assert event_names(invite) == ["Disabled"]


def test_a_claimed_invite_cannot_be_disabled() -> None:
    invite = given_invite()
    invite.claim(ACTOR, user_id=5)
    invite.collect_events()
    assert invite.disable(ACTOR) is False
    assert event_names(invite) == []


@pytest.mark.parametrize("workspace_ids", [[0], [-1], [1, 0], list(range(1, 1002))])
def test_an_invite_with_bad_workspace_ids_is_refused(workspace_ids: list[int]) -> None:
    with pytest.raises(InvalidInput):
        Invite.create(ACTOR, 1, "hash", "abcd", workspace_ids)


def test_invite_workspace_ids_are_deduplicated_in_order() -> None:
    assert Invite.create(ACTOR, 1, "hash", "abcd", [3, 1, 3, 2, 1]).workspace_ids == (3, 1, 2)


# System -------------------------------------------------------------------------------------
def test_enabling_multi_user_mode_twice_raises_conflict() -> None:
    system = given_system()
    assert system.multi_user_mode is False
    system.enable_multi_user_mode(ACTOR)
    with pytest.raises(Conflict):
        system.enable_multi_user_mode(ACTOR)
    assert event_names(system) == ["MultiUserModeEnabled"]
    assert system.multi_user_mode is True


def test_preferences_drop_unknown_labels() -> None:
    system = given_system()
    known = system.update_preferences(ACTOR, {"support_email": "s@example.com", "evil": "x", "footer_data": None})
    assert known == {"support_email": "s@example.com", "footer_data": None}
    events = system.collect_events()
    assert [type(e).__name__ for e in events] == ["PreferencesUpdated"]
    assert events[0].values == known


def test_preferences_with_only_unknown_labels_record_nothing() -> None:
    system = given_system()
    assert system.update_preferences(ACTOR, {"evil": "x", "": "y"}) == {}
    assert event_names(system) == []


# Sequence -----------------------------------------------------------------------------------
def test_a_sequence_reserves_consecutive_blocks() -> None:
    seq = Sequence.start(ACTOR, "api_keys")
    assert [list(seq.reserve(ACTOR, 2)), list(seq.reserve(ACTOR, 3))] == [[1, 2], [3, 4, 5]]
    assert event_names(seq) == ["Started", "Reserved", "Reserved"]


# every event: actor stamp, no secrets -------------------------------------------------------
def all_event_classes() -> list[type]:
    """Every event class an aggregate declares (each has an `apply`); not the generated bases."""
    found = []
    for module in (domain.users, domain.apikeys, domain.invites, domain.system, domain.sequence,
                   domain.workspaces, domain.documents, domain.embeds, domain.chats, domain.threads):
        for aggregate in vars(module).values():
            if isinstance(aggregate, type) and issubclass(aggregate, Audited) and aggregate is not Audited:
                found += event_classes(aggregate)
    return found


def test_every_declared_event_class_is_found() -> None:
    names = {c.__qualname__ for c in all_event_classes()}
    assert len(names) == len(all_event_classes()) >= 27, sorted(names)
    assert {"User.Registered", "User.Deleted", "UserDirectory.Opened", "UserDirectory.Left", "ApiKey.Issued",
            "ApiKey.Expired", "Invite.Created", "Invite.Disabled", "System.Installed",
            "System.PreferencesUpdated", "Sequence.Started", "Sequence.Advanced"} <= names
    assert not names & {"User.Event", "User.Created", "ApiKey.Event", "System.Created"}


def every_kind_of_event(actor: Actor) -> list[Any]:
    """Run every command once as `actor`; return all the events recorded."""
    admin = User.register(actor, 1, "admin", Role.ADMIN, "hash-1")
    deputy = User.register(actor, 2, "deputy", Role.ADMIN, "hash-2")
    directory = UserDirectory.open(actor)
    directory.enter(actor, admin)
    directory.enter(actor, deputy)
    deputy.rename(actor, "second")
    directory.rename(actor, 2, "deputy", "second")
    deputy.change_role(actor, Role.MANAGER)
    directory.note_admin_status(actor, deputy)
    deputy.update_profile(actor, 10, "bio", "pfp.png")
    deputy.change_password(actor, "hash-3")
    deputy.suspend(actor)
    deputy.unsuspend(actor)
    deputy.revoke_sessions(actor)
    deputy.issue_auth_token(actor, "token-hash", T0)
    deputy.redeem_auth_token(actor, "token-hash")
    directory.leave(actor, deputy)
    deputy.delete(actor)
    deputy.erase(actor, "asked to be forgotten")
    seq = Sequence.start(actor, "api_keys")
    key = ApiKey.issue(actor, seq.reserve(actor, 1)[0], 1, "secret-hash", "sk-abcdefgh", name="k", expires_at=T0)
    key.mark_expired(actor, T0)
    key.revoke(actor)
    invite = Invite.create(actor, 1, "code-hash", "abcd", [1])
    invite.claim(actor, 3)
    other_invite = Invite.create(actor, 2, "code-hash-2", "efgh", [])
    other_invite.disable(actor)
    system = System.install(actor, owner_user_id=1)
    system.enable_multi_user_mode(actor)
    system.update_preferences(actor, {"support_email": "s@example.com"})
    system.change_settings(actor, {"LLMProvider": "openai"}, ["OpenAiKey"])
    seq.reserve(actor, 10)
    content = _content_tour(actor)
    events: list[Any] = []
    for aggregate in (admin, deputy, directory, seq, key, invite, other_invite, system, *content):
        events += aggregate.collect_events()
    return events + _retired_events(actor, seq)


def _retired_events(actor: Actor, seq: Sequence) -> list[Any]:
    """Events no command records any more, as older stores hold them (they must still map and
    apply)."""
    advanced = Sequence.Advanced(originator_id=seq.id, originator_version=seq.version + 1, timestamp=T0,
                                 value=seq.last + 1, **actor.stamp())
    advanced.mutate(seq)  # still applies
    assert seq.last == advanced.value
    return [advanced]


def _content_tour(actor: Actor) -> list[Any]:
    """Workspaces, documents, embeds, threads and chats."""
    from domain.chats import Chat, HistoryReset
    from domain.documents import Document, Folder
    from domain.embeds import Embed, EmbedChatSlot
    from domain.threads import Thread, ThreadSlug
    from domain.workspaces import Workspace, WorkspaceDirectory, WorkspaceDoc

    spaces = WorkspaceDirectory.open(actor)
    spaces.take_slug(actor, 1, "alpha")
    workspace = Workspace.create(actor, 1, "Alpha", "alpha", {"topN": 3})
    workspace.update(actor, {"topN": 5})
    workspace.set_members(actor, {2}, replace=True)
    workspace.embed(actor, [WorkspaceDoc("d1", "f/x.json", "00000000-0000-0000-0000-000000000001", "h" * 64, 200, 20, 1)])
    workspace.pin(actor, "f/x.json", True)
    workspace.remove_documents(actor, ["f/x.json"])
    workspace.delete(actor)
    spaces.free_slug(actor, "alpha")
    folder = Folder.create(actor, "archive")
    folder.remove(actor)
    folder.restore(actor)
    doc = Document.upload(actor, "00000000-0000-0000-0000-000000000002", "archive", "a.txt", "upload", "text/plain",
                          "c" * 64, "t" * 64, 10, 2, 3, {"title": "a"})
    doc.move(actor, "custom-documents")
    doc.delete(actor)
    embed = Embed.create(actor, 1, "00000000-0000-0000-0000-000000000003", 1, {"chat_mode": "chat"})
    embed.update(actor, {"enabled": False})
    embed.delete(actor)
    thread = Thread.create(actor, 1, 1, 1, "t", "t-1")
    thread.rename(actor, "t2")
    thread.delete(actor)
    claim = ThreadSlug.claim(actor, "t-1", 1, 1)
    slot = EmbedChatSlot.reserve(actor, 1, "session:s", 0)
    chat = Chat.record(actor, 1, workspace_id=1, user_id=1, thread_id=None, session_id=None, embed_id=None,
                       prompt="p", response="r", mode="chat", sources=[], attachments=[], model="m",
                       prompt_tokens=1, completion_tokens=1, latency_ms=1.0, include=True, status="ok", error=None)
    reset = HistoryReset.record(actor, 1, 1, None, None)
    return [spaces, workspace, folder, doc, embed, thread, claim, slot, chat, reset]


def test_the_command_tour_produces_every_kind_of_event() -> None:
    produced = {type(e) for e in every_kind_of_event(ACTOR)}
    missing = {c.__qualname__ for c in all_event_classes()} - {c.__qualname__ for c in produced}
    assert not missing, f"events no command in every_kind_of_event produced: {sorted(missing)}"


def test_every_event_carries_the_actor_it_was_given() -> None:
    for actor in (ACTOR, OTHER):
        for event in every_kind_of_event(actor):
            stamp = (event.actor_user_id, event.actor_api_key_id, event.correlation_id)
            assert stamp == (actor.user_id, actor.api_key_id, actor.correlation_id), event


ALLOWED_SENSITIVE_FIELDS = {
    "User.Registered": {"password_hash"},
    "User.PasswordChanged": {"password_hash"},
    "ApiKey.Issued": {"secret_hash"},
    "System.SettingsChanged": {"secret_keys"},  # the names of the secrets that changed, not their values
}


def test_no_event_class_has_a_secret_or_password_field_except_the_hashes() -> None:
    for cls in all_event_classes():
        names = {f.name for f in dataclasses.fields(cls)}
        sensitive = {n for n in names if "secret" in n.lower() or "password" in n.lower()}
        assert sensitive == ALLOWED_SENSITIVE_FIELDS.get(cls.__qualname__, set()), cls.__qualname__
        assert {"actor_user_id", "actor_api_key_id", "correlation_id"} <= names, cls.__qualname__


def test_no_recorded_event_holds_a_secret_or_password_field_except_the_hashes() -> None:
    for event in every_kind_of_event(ACTOR):
        name = type(event).__qualname__
        sensitive = {k for k in vars(event) if "secret" in k.lower() or "password" in k.lower()}
        assert sensitive == ALLOWED_SENSITIVE_FIELDS.get(name, set()), name
    issued = next(e for e in every_kind_of_event(ACTOR) if isinstance(e, ApiKey.Issued))
    assert issued.secret_hash == "secret-hash" and not hasattr(issued, "secret")


def test_changing_provider_settings_records_secret_names_only() -> None:
    system = given_system()
    system.change_settings(ACTOR, {"LLMProvider": "openai"}, ["OpenAiKey", "GroqApiKey"])
    system.change_settings(ACTOR, {}, [])  # nothing changed: nothing recorded
    events = system.collect_events()
    assert [type(e).__name__ for e in events] == ["SettingsChanged"]
    assert events[0].values == {"LLMProvider": "openai"}
    assert events[0].secret_keys == ("GroqApiKey", "OpenAiKey")
