"""API key use cases on the in-memory store: given events, when a command, then new events
(with the actor's ids and no secret) or an error. Expiry uses a clock the test moves."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from application.apikeys import CreateApiKey, RevokeApiKey, create_api_key, list_api_keys, revoke_api_key
from application.authentication import RecordExpiry, is_expired, lookup_principal, record_expiry
from domain.apikeys import ApiKey
from domain.errors import ApiKeyNotFound, InvalidInput
from domain.hashing import hash_secret
from tests.support.clock import FakeClock
from tests.support.memory import head, memory_runtime, new_events, owner


def test_create_records_one_issued_event_with_the_actor_and_no_secret(tmp_path):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        new = create_api_key(rt.ctx, CreateApiKey(principal=owner(rt), correlation_id="c1", name="ci"))
        events = [e for e in new_events(rt, before) if isinstance(e, ApiKey.Event)]
        assert [type(e) for e in events] == [ApiKey.Issued]
        issued = events[0]
        assert (issued.actor_user_id, issued.actor_api_key_id, issued.correlation_id) == (1, None, "c1")
        assert issued.secret_hash == hash_secret(new.secret)
        assert new.secret.encode() not in msgspec.json.encode(rt.ctx.ledger.mapper.to_stored_event(issued).state)
        assert [k.key.id for k in list_api_keys(rt.ctx)] == [new.key.id]


def test_an_expired_key_is_refused_and_its_expiry_recorded_once(tmp_path):
    clock = FakeClock()
    with memory_runtime(tmp_path, clock=clock) as rt:
        new = create_api_key(rt.ctx, CreateApiKey(principal=owner(rt), correlation_id="c1",
                                                  expires_in=timedelta(hours=1)))
        entry = lookup_principal(rt.ctx, hash_secret(new.secret))
        assert entry is not None and not is_expired(rt.ctx, entry)
        clock.advance(hours=1)
        assert is_expired(rt.ctx, entry)
        before = head(rt)
        record_expiry(rt.ctx, RecordExpiry(correlation_id="c2", key_id=new.key.id))
        record_expiry(rt.ctx, RecordExpiry(correlation_id="c3", key_id=new.key.id))
        assert [type(e) for e in new_events(rt, before)] == [ApiKey.Expired]
        assert list_api_keys(rt.ctx) == []
        assert not list_api_keys(rt.ctx, include_inactive=True)[0].active


def test_revoking_an_unknown_key_is_refused_and_records_nothing(tmp_path):
    with memory_runtime(tmp_path) as rt:
        before = head(rt)
        with pytest.raises(ApiKeyNotFound):
            revoke_api_key(rt.ctx, RevokeApiKey(principal=owner(rt), correlation_id="c1", key_id=99))
        with pytest.raises(InvalidInput):
            create_api_key(rt.ctx, CreateApiKey(principal=owner(rt), correlation_id="c2", expires_in=timedelta(0)))
        assert new_events(rt, before) == []
