"""Erasure by crypto-shredding on the in-memory store: given a user with chats and a profile,
when EraseUser, then one User.Erased (actor, key, reason, never the content), their key gone,
their content erased in the events as read and in the read models; or an error, nothing stored."""

from __future__ import annotations

import pytest

from application.chat import SendChat, answer, send_chat
from application.erasure import EraseUser, erase_user
from application.users import UpdateUser, update_user
from domain.chats import Chat
from domain.errors import InvalidInput, PermissionDenied, UserNotFound
from domain.sealed import ERASED
from domain.users import User, user_uuid
from tests.support.memory import add_user, add_workspace, head, memory_runtime, new_events, owner, own_key, stamps

SECRET = "tangerine-submarine-4711"


def _chat(rt, principal, slug, message):
    prepared = send_chat(rt.ctx, SendChat(principal=principal, correlation_id="chat", slug=slug, message=message))
    return answer(rt.ctx, prepared)


def test_erasure_records_who_and_why_and_erases_the_content_everywhere(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings) as rt:
        ws = add_workspace(rt, "docs")
        dana = add_user(rt, "dana", "admin")
        update_user(rt.ctx, UpdateUser(principal=owner(rt), correlation_id="bio", user_id=dana.user_id,
                                       bio=f"bio {SECRET}", pfp_filename=f"{SECRET}.png"))
        llm.reply(f"reply {SECRET}")
        _chat(rt, dana, ws.slug, f"dana asks {SECRET}")
        llm.reply("owner reply")
        _chat(rt, owner(rt), ws.slug, "owner asks")
        # stored sealed: the plaintext is in no stored event
        stored = rt.ctx.ledger.recorder.select_notifications(1, 10_000)
        assert not any(SECRET.encode() in n.state for n in stored)
        admin = own_key(rt, owner(rt))
        before = head(rt)

        done = erase_user(rt.ctx, EraseUser(principal=admin, correlation_id="e1", user_id=dana.user_id,
                                            reason="GDPR request 17"))

        events = new_events(rt, before)
        assert [type(e) for e in events] == [User.Erased]
        assert stamps(events) == {(1, admin.api_key_id, "e1")}
        assert (events[0].user_id, events[0].reason) == (dana.user_id, "GDPR request 17")
        assert done.keys_destroyed == 1 and done.username == "dana"
        every = new_events(rt, 0)
        assert SECRET not in repr(every)
        chats = {e.user_id: e for e in every if isinstance(e, Chat.Recorded)}
        assert (chats[dana.user_id].prompt, chats[dana.user_id].response) == (ERASED, ERASED)
        assert chats[dana.user_id].sources == [] and chats[dana.user_id].attachments == []
        assert chats[1].prompt == "owner asks"  # only that user's content
        row = rt.ctx.accounts.user(dana.user_id)
        assert (row.bio, row.pfp_filename, row.username) == (ERASED, None, "dana")
        log = rt.ctx.chats.chat_log(0, 10)
        assert [(r.user_id, r.prompt, r.response.count(SECRET)) for r in log] == [
            (1, "owner asks", 0), (dana.user_id, ERASED, 0)]
        # new content after the erasure is sealed under a new key and reads normally
        llm.reply("fresh reply")
        _chat(rt, dana, ws.slug, "after erasure")
        assert rt.ctx.chats.chat_log(0, 1)[0].prompt == "after erasure"


def test_only_admins_erase_and_a_reason_is_required_and_nothing_is_stored(tmp_path):
    with memory_runtime(tmp_path) as rt:
        mia = add_user(rt, "mia", "manager")
        dana = add_user(rt, "dana")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            erase_user(rt.ctx, EraseUser(principal=mia, correlation_id="e", user_id=dana.user_id, reason="x"))
        with pytest.raises(InvalidInput):
            erase_user(rt.ctx, EraseUser(principal=owner(rt), correlation_id="e", user_id=dana.user_id, reason="  "))
        with pytest.raises(UserNotFound):
            erase_user(rt.ctx, EraseUser(principal=owner(rt), correlation_id="e", user_id=999, reason="gone"))
        assert new_events(rt, before) == []


def test_old_plaintext_events_read_as_they_are_until_their_owner_is_erased(tmp_path):
    """Events stored before sealing existed hold plaintext: read both shapes."""
    import msgspec

    from infrastructure.mapper import MsgspecMapper

    with memory_runtime(tmp_path) as rt:
        dana = add_user(rt, "dana")
        mapper = rt.ctx.ledger.mapper
        assert isinstance(mapper, MsgspecMapper)
        plain = MsgspecMapper(transcoder=mapper.transcoder)  # no key ring: writes the old, plaintext shape
        user = rt.ctx.ledger.load(user_uuid(dana.user_id), User)
        user.update_profile(owner(rt).actor("old"), None, f"old bio {SECRET}", None)
        stored = plain.to_stored_event(user.collect_events()[0])
        assert SECRET.encode() in stored.state and msgspec.json.decode(stored.state)["bio"] == f"old bio {SECRET}"
        assert mapper.to_domain_event(stored).bio == f"old bio {SECRET}"
        erase_user(rt.ctx, EraseUser(principal=owner(rt), correlation_id="e", user_id=dana.user_id, reason="asked"))
        assert mapper.to_domain_event(stored).bio == ERASED


def test_a_deleted_user_can_be_erased_and_erasing_again_records_again(tmp_path):
    from application.users import DeleteUser, delete_user

    with memory_runtime(tmp_path) as rt:
        dana = add_user(rt, "dana")
        update_user(rt.ctx, UpdateUser(principal=owner(rt), correlation_id="bio", user_id=dana.user_id, bio=SECRET))
        delete_user(rt.ctx, DeleteUser(principal=owner(rt), correlation_id="del", user_id=dana.user_id))
        first = erase_user(rt.ctx, EraseUser(principal=owner(rt), correlation_id="e1", user_id=dana.user_id,
                                             reason="asked"))
        before = head(rt)
        again = erase_user(rt.ctx, EraseUser(principal=owner(rt), correlation_id="e2", user_id=dana.user_id,
                                             reason="asked twice"))
        assert (first.keys_destroyed, again.keys_destroyed) == (1, 0)
        assert [type(e) for e in new_events(rt, before)] == [User.Erased]
        assert SECRET not in repr(new_events(rt, 0))
