"""The chat use case on the in-memory store, with the fake OpenAI-compatible server on loopback
reached through litellm's real client: planning records nothing, `send_chat` records only a
reset or a refusal, and `answer` records the exchange with the caller's user, key and request."""

from __future__ import annotations

import pytest

from application.chat import (
    RESET_TEXT, Answer, ChatFailed, Immediate, Prepared, SendChat, answer, plan_chat, send_chat,
)
from domain.chats import Chat, HistoryReset
from domain.errors import InvalidInput, NotFound, PermissionDenied
from domain.principal import Scope
from tests.support.memory import add_user, add_workspace, head, memory_runtime, new_events, owner, stamps, own_key


def _chat(principal, slug: str, message: str | None = "hello there", **fields) -> SendChat:
    return SendChat(principal=principal, correlation_id="c1", slug=slug, message=message, **fields)


def test_a_chat_records_one_exchange_with_the_key_and_request(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings) as rt:
        ws = add_workspace(rt, "docs")
        me = own_key(rt, owner(rt))
        llm.reply("General Kenobi")
        before = head(rt)
        prepared = send_chat(rt.ctx, _chat(me, ws.slug))
        assert isinstance(prepared, Prepared) and new_events(rt, before) == []  # nothing before the model
        result = answer(rt.ctx, prepared)
        assert isinstance(result, Answer) and result.text == "General Kenobi"
        chats = [e for e in new_events(rt, before) if isinstance(e, Chat.Event)]
        assert [type(e) for e in chats] == [Chat.Recorded]
        assert stamps(chats) == {(1, me.api_key_id, "c1")}
        assert (chats[0].prompt, chats[0].response, chats[0].status) == ("hello there", "General Kenobi", "ok")
        assert llm.chat_requests[-1].body["messages"][-1]["content"] == "hello there"


def test_the_next_chat_sees_the_history_and_a_reset_clears_it(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings) as rt:
        ws = add_workspace(rt, "docs")
        me = owner(rt)
        answer(rt.ctx, send_chat(rt.ctx, _chat(me, ws.slug, "first")))
        again = plan_chat(rt.ctx, _chat(me, ws.slug, "second"))
        assert [m["content"] for m in again.messages[1:]][:1] == ["first"]
        before = head(rt)
        reset = send_chat(rt.ctx, _chat(me, ws.slug, None, reset=True))
        assert isinstance(reset, Immediate) and reset.text == RESET_TEXT
        events = new_events(rt, before)
        assert [type(e) for e in events] == [HistoryReset.Recorded] and stamps(events) == {(1, None, "c1")}
        after = plan_chat(rt.ctx, _chat(me, ws.slug, "third"))
        assert [m["role"] for m in after.messages] == ["system", "user"]


def test_query_mode_with_nothing_to_answer_from_records_the_refusal_outside_history(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings) as rt:
        ws = add_workspace(rt, "docs", queryRefusalResponse="Nothing here.")
        before = head(rt)
        refused = send_chat(rt.ctx, _chat(owner(rt), ws.slug, mode="query"))
        assert isinstance(refused, Immediate) and refused.text == "Nothing here." and refused.chat_id
        chats = [e for e in new_events(rt, before) if isinstance(e, Chat.Event)]
        assert [(e.status, e.include) for e in chats] == [("refused", False)]
        assert llm.chat_requests == []


def test_bad_input_is_refused_before_anything_is_recorded_even_with_a_reset(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings) as rt:
        ws = add_workspace(rt, "docs")
        me = owner(rt)
        before = head(rt)
        for cmd in (_chat(me, ws.slug, "   ", reset=True), _chat(me, ws.slug, "a\x00b"), _chat(me, ws.slug, mode="x")):
            with pytest.raises(InvalidInput):
                send_chat(rt.ctx, cmd)
        with pytest.raises(NotFound):
            send_chat(rt.ctx, _chat(me, "nope"))
        assert new_events(rt, before) == [] and llm.chat_requests == []


def test_only_admins_chat_for_another_user_and_keys_need_the_chat_scope(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings) as rt:
        ws = add_workspace(rt, "docs")
        dan, eve = add_user(rt, "dan"), add_user(rt, "eve")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            plan_chat(rt.ctx, _chat(dan, ws.slug, user_id=eve.user_id))
        read_only = own_key(rt, dan)
        from msgspec.structs import replace

        with pytest.raises(PermissionDenied):
            send_chat(rt.ctx, _chat(replace(read_only, scopes=(Scope.READ.value,)), ws.slug))
        assert [e for e in new_events(rt, before) if isinstance(e, Chat.Event | HistoryReset.Event)] == []


def test_a_provider_failure_is_recorded_outside_history_and_raised(tmp_path, llm, llm_settings):
    with memory_runtime(tmp_path, **llm_settings) as rt:
        ws = add_workspace(rt, "docs")
        llm.reply_error(500, "upstream exploded")
        prepared = send_chat(rt.ctx, _chat(owner(rt), ws.slug))
        before = head(rt)
        with pytest.raises(ChatFailed):
            answer(rt.ctx, prepared)
        chats = [e for e in new_events(rt, before) if isinstance(e, Chat.Event)]
        assert [(e.status, e.include) for e in chats] == [("failed", False)]
