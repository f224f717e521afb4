"""Invite use cases on the in-memory store: who may make and disable invites, and a claim that
registers the new user (acting for themselves) and joins the invite's workspaces in one save."""

from __future__ import annotations

import pytest

from application.invites import (
    ClaimInvite, CreateInvite, DisableInvite, claim_invite, create_invite, disable_invite, invite_problem,
)
from domain.errors import InviteNotFound, MultiUserModeRequired, NotFound, PermissionDenied
from domain.invites import Invite
from domain.users import User, UserDirectory
from domain.workspaces import Workspace
from tests.support.memory import (
    PASSWORD, add_user, add_workspace, head, memory_runtime, multi_user_as_root, new_events, stamps, own_key,
)


def test_invites_need_multi_user_mode_and_a_manager_or_admin(tmp_path):
    with memory_runtime(tmp_path) as rt:
        dan = add_user(rt, "dan")
        before = head(rt)
        with pytest.raises(MultiUserModeRequired):
            create_invite(rt.ctx, CreateInvite(principal=dan, correlation_id="c0"))
        multi_user_as_root(rt)
        before = head(rt)
        with pytest.raises(PermissionDenied):
            create_invite(rt.ctx, CreateInvite(principal=dan, correlation_id="c1"))
        assert new_events(rt, before) == []


def test_create_records_the_invite_with_the_key_and_never_the_code(tmp_path):
    with memory_runtime(tmp_path) as rt:
        root = own_key(rt, multi_user_as_root(rt))
        before = head(rt)
        new = create_invite(rt.ctx, CreateInvite(principal=root, correlation_id="c1"))
        events = new_events(rt, before)
        invites = [e for e in events if isinstance(e, Invite.Event)]
        assert [type(e) for e in invites] == [Invite.Created]
        assert stamps(events) == {(1, root.api_key_id, "c1")}
        assert new.code not in repr(events) and new.invite.status == "pending"
        assert invite_problem(rt.ctx, new.code) is None


def test_a_claim_registers_the_user_as_their_own_actor_and_joins_live_workspaces(tmp_path):
    with memory_runtime(tmp_path) as rt:
        root = multi_user_as_root(rt)
        kept, gone = add_workspace(rt, "kept"), add_workspace(rt, "gone")
        new = create_invite(rt.ctx, CreateInvite(principal=root, correlation_id="c1", workspace_ids=[kept.id, gone.id]))
        from application.workspaces import DeleteWorkspace, delete_workspace

        delete_workspace(rt.ctx, DeleteWorkspace(principal=root, correlation_id="c2", slug=gone.slug))
        before = head(rt)
        user = claim_invite(rt.ctx, ClaimInvite(correlation_id="c3", code=new.code, username="newbie",
                                                password=PASSWORD))
        events = new_events(rt, before)
        assert [type(e) for e in events] == [UserDirectory.Entered, User.Registered, Invite.Claimed,
                                             Workspace.MembersChanged]
        assert stamps(events) == {(user.id, None, "c3")}
        assert user.role == "default" and rt.ctx.library.member_ids(kept.id) == {user.id}
        assert invite_problem(rt.ctx, new.code) == "Invite is no longer valid."


def test_a_code_is_claimed_once_and_a_disabled_one_never(tmp_path):
    with memory_runtime(tmp_path) as rt:
        root = multi_user_as_root(rt)
        first = create_invite(rt.ctx, CreateInvite(principal=root, correlation_id="c1"))
        second = create_invite(rt.ctx, CreateInvite(principal=root, correlation_id="c2"))
        claim_invite(rt.ctx, ClaimInvite(correlation_id="c3", code=first.code, username="one", password=PASSWORD))
        before = head(rt)
        disable_invite(rt.ctx, DisableInvite(principal=root, correlation_id="c4", invite_id=second.invite.id))
        assert [type(e) for e in new_events(rt, before)] == [Invite.Disabled]
        before = head(rt)
        for code, name in ((first.code, "again"), (second.code, "two"), ("made-up", "three")):
            with pytest.raises(NotFound):
                claim_invite(rt.ctx, ClaimInvite(correlation_id="c5", code=code, username=name, password=PASSWORD))
        with pytest.raises(InviteNotFound):
            disable_invite(rt.ctx, DisableInvite(principal=root, correlation_id="c6", invite_id=second.invite.id))
        assert new_events(rt, before) == []
        assert rt.ctx.accounts.user_named("two") is None
