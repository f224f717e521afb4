"""Sign-in use cases on the in-memory store: password login, session checks, and single-use
sign-in tokens whose six-minute life runs on a clock the test moves."""

from __future__ import annotations

import pytest

from application.sessions import (
    AUTH_TOKEN_TTL, INVALID_CREDENTIALS, SUSPENDED, IssueAuthToken, RedeemAuthToken, issue_auth_token, login,
    redeem_auth_token, session_principal,
)
from application.users import RevokeSessions, UpdateUser, revoke_sessions, update_user
from domain.errors import InvalidSignInToken, PermissionDenied, UserNotFound
from domain.users import User
from tests.support.clock import FakeClock
from tests.support.memory import (
    PASSWORD, add_user, head, memory_runtime, multi_user_as_root, new_events, owner, stamps, own_key,
)


def test_login_gives_a_session_until_the_sessions_are_revoked(tmp_path):
    with memory_runtime(tmp_path) as rt:
        multi_user_as_root(rt)
        dan = add_user(rt, "dan")
        before = head(rt)
        assert login(rt.ctx, "dan", "wrong password").message == INVALID_CREDENTIALS
        assert login(rt.ctx, "nobody", PASSWORD).message == INVALID_CREDENTIALS
        result = login(rt.ctx, "dan", PASSWORD)
        assert result.valid and result.token
        assert new_events(rt, before) == []  # a login records nothing
        assert session_principal(rt.ctx, result.token).user_id == dan.user_id
        revoke_sessions(rt.ctx, RevokeSessions(principal=dan, correlation_id="c1", user_id=dan.user_id))
        assert session_principal(rt.ctx, result.token) is None


def test_a_suspended_user_cannot_log_in(tmp_path):
    with memory_runtime(tmp_path) as rt:
        root = multi_user_as_root(rt)
        dan = add_user(rt, "dan")
        update_user(rt.ctx, UpdateUser(principal=root, correlation_id="c1", user_id=dan.user_id, suspended=True))
        assert login(rt.ctx, "dan", PASSWORD).message == SUSPENDED


def test_a_sign_in_token_is_issued_by_an_admin_and_redeemed_once_by_its_user(tmp_path):
    with memory_runtime(tmp_path, simple_sso_enabled=True) as rt:
        root = own_key(rt, multi_user_as_root(rt))
        dan = add_user(rt, "dan")
        before = head(rt)
        token = issue_auth_token(rt.ctx, IssueAuthToken(principal=root, correlation_id="c1", user_id=dan.user_id))
        issued = new_events(rt, before)
        assert [type(e) for e in issued] == [User.AuthTokenIssued]
        assert stamps(issued) == {(1, root.api_key_id, "c1")} and token not in repr(issued)
        before = head(rt)
        result = redeem_auth_token(rt.ctx, RedeemAuthToken(correlation_id="c2", token=token))
        redeemed = new_events(rt, before)
        assert result.valid and result.user.id == dan.user_id
        assert [type(e) for e in redeemed] == [User.AuthTokenRedeemed] and stamps(redeemed) == {(dan.user_id, None, "c2")}
        before = head(rt)
        with pytest.raises(InvalidSignInToken):
            redeem_auth_token(rt.ctx, RedeemAuthToken(correlation_id="c3", token=token))
        assert new_events(rt, before) == []


def test_a_sign_in_token_expires_after_its_ttl(tmp_path):
    clock = FakeClock()
    with memory_runtime(tmp_path, clock=clock, simple_sso_enabled=True) as rt:
        root = multi_user_as_root(rt)
        dan = add_user(rt, "dan")
        token = issue_auth_token(rt.ctx, IssueAuthToken(principal=root, correlation_id="c1", user_id=dan.user_id))
        clock.advance(seconds=AUTH_TOKEN_TTL.total_seconds())
        before = head(rt)
        with pytest.raises(InvalidSignInToken):
            redeem_auth_token(rt.ctx, RedeemAuthToken(correlation_id="c2", token=token))
        assert new_events(rt, before) == []


def test_only_admins_issue_sign_in_tokens_and_only_with_simple_sso(tmp_path):
    with memory_runtime(tmp_path, simple_sso_enabled=True) as rt:
        multi_user_as_root(rt)
        dan = add_user(rt, "dan")
        manager = add_user(rt, "mia", "manager")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            issue_auth_token(rt.ctx, IssueAuthToken(principal=manager, correlation_id="c1", user_id=dan.user_id))
        with pytest.raises(UserNotFound):
            issue_auth_token(rt.ctx, IssueAuthToken(principal=owner(rt), correlation_id="c2", user_id=99))
        assert new_events(rt, before) == []
    with memory_runtime(tmp_path / "off") as rt:
        root = multi_user_as_root(rt)
        with pytest.raises(PermissionDenied):
            issue_auth_token(rt.ctx, IssueAuthToken(principal=root, correlation_id="c3", user_id=root.user_id))
