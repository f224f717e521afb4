"""Embed use cases on the in-memory store: admins manage embeds; a widget visitor's chat
reserves one of the embed's limited slots, and the daily window follows a clock the test moves."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from application.embeds import (
    ChatLimitReached, CreateEmbed, DeleteEmbed, ReserveWidgetChat, ResetWidgetSession, UpdateEmbed, WidgetError,
    create_embed, delete_embed, reserve_widget_chat, reset_widget_session, update_embed,
)
from domain.chats import HistoryReset
from domain.embeds import Embed, EmbedChatSlot
from domain.errors import NotFound, PermissionDenied
from tests.support.clock import FakeClock
from tests.support.memory import add_user, add_workspace, head, memory_runtime, new_events, owner, stamps, own_key


def _widget(uuid: str, session: str = "s1", origin: str | None = None) -> ReserveWidgetChat:
    return ReserveWidgetChat(correlation_id="w", public_uuid=uuid, origin=origin, session_id=session, message="hi")


def test_admins_create_change_and_delete_embeds_acting_with_their_key(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = add_workspace(rt, "docs")
        admin = own_key(rt, owner(rt))
        before = head(rt)
        embed = create_embed(rt.ctx, CreateEmbed(principal=admin, correlation_id="c1", slug=ws.slug,
                                                 settings={"max_chats_per_day": 5}))
        update_embed(rt.ctx, UpdateEmbed(principal=admin, correlation_id="c2", public_uuid=embed.uuid,
                                         settings={"enabled": False}))
        delete_embed(rt.ctx, DeleteEmbed(principal=admin, correlation_id="c3", public_uuid=embed.uuid))
        embeds = [e for e in new_events(rt, before) if isinstance(e, Embed.Event)]
        assert [type(e) for e in embeds] == [Embed.Created, Embed.Updated, Embed.Deleted]
        assert [s[2] for s in sorted(stamps(embeds), key=lambda s: s[2])] == ["c1", "c2", "c3"]
        assert {s[:2] for s in stamps(embeds)} == {(1, admin.api_key_id)}


def test_non_admins_and_unknown_workspaces_are_refused_and_nothing_is_stored(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = add_workspace(rt, "docs")
        manager = add_user(rt, "mia", "manager")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            create_embed(rt.ctx, CreateEmbed(principal=manager, correlation_id="c1", slug=ws.slug, settings={}))
        with pytest.raises(NotFound):
            create_embed(rt.ctx, CreateEmbed(principal=owner(rt), correlation_id="c2", slug="nope", settings={}))
        with pytest.raises(NotFound):
            update_embed(rt.ctx, UpdateEmbed(principal=owner(rt), correlation_id="c3", public_uuid="nope", settings={}))
        assert new_events(rt, before) == []


def test_the_session_limit_is_reserved_per_chat_and_refuses_beyond_it(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = add_workspace(rt, "docs")
        embed = create_embed(rt.ctx, CreateEmbed(principal=owner(rt), correlation_id="c", slug=ws.slug,
                                                 settings={"max_chats_per_session": 2}))
        before = head(rt)
        chats = [reserve_widget_chat(rt.ctx, _widget(embed.uuid)) for _ in range(2)]
        events = new_events(rt, before)
        assert [type(e) for e in events] == [EmbedChatSlot.Reserved] * 2
        assert stamps(events) == {(1, None, "w")}  # recorded for the embed's creator
        assert {(c.slug, c.embed_id, c.session_id, c.mode) for c in chats} == {(ws.slug, embed.id, "s1", "query")}
        before = head(rt)
        with pytest.raises(ChatLimitReached):
            reserve_widget_chat(rt.ctx, _widget(embed.uuid))
        assert new_events(rt, before) == []
        reserve_widget_chat(rt.ctx, _widget(embed.uuid, session="s2"))  # another session has its own


def test_the_daily_limit_resets_when_the_clock_passes_midnight(tmp_path):
    now = datetime.now(timezone.utc).replace(hour=12)  # the read model dates chats by the store's clock
    clock = FakeClock(now)
    with memory_runtime(tmp_path, clock=clock) as rt:
        ws = add_workspace(rt, "docs")
        embed = create_embed(rt.ctx, CreateEmbed(principal=owner(rt), correlation_id="c", slug=ws.slug,
                                                 settings={"max_chats_per_day": 1}))
        reserve_widget_chat(rt.ctx, _widget(embed.uuid, "a"))
        with pytest.raises(ChatLimitReached):
            reserve_widget_chat(rt.ctx, _widget(embed.uuid, "b"))
        clock.advance(days=1)
        before = head(rt)
        reserve_widget_chat(rt.ctx, _widget(embed.uuid, "b"))
        slots = new_events(rt, before)
        assert [type(e) for e in slots] == [EmbedChatSlot.Reserved]
        assert slots[0].window == f"day:{clock.now():%Y-%m-%d}"


def test_the_allowlist_and_a_disabled_embed_refuse_widget_visitors(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = add_workspace(rt, "docs")
        embed = create_embed(rt.ctx, CreateEmbed(principal=owner(rt), correlation_id="c", slug=ws.slug,
                                                 settings={"allowlist_domains": ["https://ok.example"]}))
        before = head(rt)
        with pytest.raises(WidgetError):
            reserve_widget_chat(rt.ctx, _widget(embed.uuid, origin="https://evil.example"))
        reserve_widget_chat(rt.ctx, _widget(embed.uuid, origin="https://ok.example/"))
        update_embed(rt.ctx, UpdateEmbed(principal=owner(rt), correlation_id="c2", public_uuid=embed.uuid,
                                         settings={"enabled": False}))
        with pytest.raises(NotFound):
            reserve_widget_chat(rt.ctx, _widget(embed.uuid, origin="https://ok.example"))
        assert [type(e) for e in new_events(rt, before)] == [Embed.Updated]


def test_a_widget_reset_is_recorded_for_the_session(tmp_path):
    with memory_runtime(tmp_path) as rt:
        ws = add_workspace(rt, "docs")
        embed = create_embed(rt.ctx, CreateEmbed(principal=owner(rt), correlation_id="c", slug=ws.slug, settings={}))
        before = head(rt)
        reset_widget_session(rt.ctx, ResetWidgetSession(correlation_id="r1", public_uuid=embed.uuid, origin=None,
                                                        session_id="s1"))
        events = new_events(rt, before)
        assert [type(e) for e in events] == [HistoryReset.Recorded] and stamps(events) == {(1, None, "r1")}
        assert (events[0].embed_id, events[0].session_id) == (embed.id, "s1")
