"""The msgspec Mapper: every event type survives the trip to a StoredEvent and back, is stored
as compact JSON, and old stored versions of an event are upcast on the way back."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
import pytest
from eventsourcing.persistence import JSONTranscoder, MapperDeserialisationError, StoredEvent
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.utils import get_topic

from domain.apikeys import ApiKey
from domain.audited import Audited
from domain.invites import Invite
from domain.principal import Actor
from infrastructure.mapper import MsgspecMapper
from tests.unit.test_domain_rules import all_event_classes, every_kind_of_event

ACTOR = Actor(user_id=7, api_key_id=42, correlation_id="req-7f3a")
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


@pytest.fixture
def mapper() -> MsgspecMapper:
    return MsgspecMapper(transcoder=JSONTranscoder())


def round_trip(mapper: MsgspecMapper, event: Any) -> Any:
    return mapper.to_domain_event(mapper.to_stored_event(event))


# round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("event_class", all_event_classes(), ids=lambda c: c.__qualname__)
def test_each_event_type_survives_a_round_trip(mapper: MsgspecMapper, event_class: type) -> None:
    events = [e for e in every_kind_of_event(ACTOR) if type(e) is event_class]
    assert events, f"no {event_class.__qualname__} event was produced"
    for event in events:
        back = round_trip(mapper, event)
        assert type(back) is type(event)
        assert back == event
        assert vars(back) == vars(event)


def test_a_round_trip_restores_datetimes_uuids_and_tuples(mapper: MsgspecMapper) -> None:
    issued_event = ApiKey.issue(
        ACTOR, 5, 1, "secret-hash", "sk-abcdefgh", scopes=("read", "chat"), expires_at=T0).collect_events()[0]
    created_event = Invite.create(ACTOR, 3, "code-hash", "abcd", [4, 2]).collect_events()[0]
    issued, created = round_trip(mapper, issued_event), round_trip(mapper, created_event)
    for event, back in ((issued_event, issued), (created_event, created)):
        assert isinstance(back.originator_id, UUID) and back.originator_id == event.originator_id
        assert isinstance(back.timestamp, datetime) and back.timestamp == event.timestamp
        assert back.timestamp.utcoffset() is not None
    assert issued.scopes == ("read", "chat") and isinstance(issued.scopes, tuple)
    assert issued.expires_at == T0 and isinstance(issued.expires_at, datetime)
    assert issued.expires_at.microsecond == T0.microsecond
    assert created.workspace_ids == (4, 2) and isinstance(created.workspace_ids, tuple)


def test_a_round_trip_rebuilds_the_same_aggregate(mapper: MsgspecMapper) -> None:
    key = ApiKey.issue(ACTOR, 5, 1, "secret-hash", "sk-abcdefgh", scopes=("read",), expires_at=T0, rate_limit=9)
    key.revoke(ACTOR)
    events = [round_trip(mapper, e) for e in key.collect_events()]
    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    assert rebuilt is not None
    assert (rebuilt.id, rebuilt.version, rebuilt.scopes, rebuilt.expires_at, rebuilt.rate_limit, rebuilt.revoked) == (
        key.id, key.version, ("read",), T0, 9, True)


def test_stored_state_is_compact_json_without_the_originator_id_and_version(mapper: MsgspecMapper) -> None:
    for event in every_kind_of_event(ACTOR):
        stored = mapper.to_stored_event(event)
        assert (stored.originator_id, stored.originator_version) == (event.originator_id, event.originator_version)
        assert stored.topic == get_topic(type(event))
        state = msgspec.json.decode(stored.state)
        assert isinstance(state, dict)
        assert "originator_id" not in state and "originator_version" not in state
        assert "class_version" not in state  # all current domain events are version 1
        assert stored.state == msgspec.json.encode(state), "state is not compact JSON"
        assert state["actor_user_id"] == 7 and state["correlation_id"] == "req-7f3a"


def test_stored_state_holds_plain_json_for_datetimes_and_uuids(mapper: MsgspecMapper) -> None:
    event = ApiKey.issue(ACTOR, 5, 1, "secret-hash", "sk-abcdefgh", expires_at=T0).collect_events()[0]
    state = msgspec.json.decode(mapper.to_stored_event(event).state)
    assert state["expires_at"] == "2026-01-02T03:04:05.678901Z"
    assert state["scopes"] == ["read", "write", "chat", "admin"]
    assert state["originator_topic"] == "domain.apikeys:ApiKey"


def test_a_compressed_round_trip_gives_the_same_events() -> None:
    mapper = MsgspecMapper(transcoder=JSONTranscoder(), compressor=ZlibCompressor())
    for event in every_kind_of_event(ACTOR):
        stored = mapper.to_stored_event(event)
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(stored.state)
        assert mapper.to_domain_event(stored) == event


def test_undecodable_state_raises_a_mapper_error(mapper: MsgspecMapper) -> None:
    event = ApiKey.issue(ACTOR, 5, 1, "secret-hash", "sk-abcdefgh").collect_events()[0]
    stored = mapper.to_stored_event(event)
    broken = StoredEvent(stored.originator_id, stored.originator_version, stored.topic, b"{not json")
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(broken)
    state = msgspec.json.decode(stored.state)
    del state["secret_hash"]
    missing = StoredEvent(stored.originator_id, stored.originator_version, stored.topic, msgspec.json.encode(state))
    with pytest.raises(MapperDeserialisationError, match="secret_hash"):
        mapper.to_domain_event(missing)


# event evolution ----------------------------------------------------------------------------
def gadget_uuid(number: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/tests/gadgets/{number}")


class Gadget(Audited):
    """A test-only aggregate whose `Priced` event gained a `currency` field in version 2."""

    class Made(Audited.Created):
        name: str

        def apply(self, gadget: Gadget) -> None:
            gadget.name = self.name
            gadget.price = None
            gadget.currency = None

    class Priced(Audited.Event):
        class_version = 2

        amount: int
        currency: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["currency"] = "EUR"  # every v1 price was in euros

        def apply(self, gadget: Gadget) -> None:
            gadget.price = self.amount
            gadget.currency = self.currency

    @classmethod
    def make(cls, actor: Actor, number: int, name: str) -> Gadget:
        return cls._create(cls.Made, id=gadget_uuid(number), **actor.stamp(), name=name)

    def set_price(self, actor: Actor, amount: int, currency: str) -> None:
        self._record(self.Priced, actor, amount=amount, currency=currency)


def v1_priced(amount: int) -> StoredEvent:
    """A `Priced` event as version 1 of the code stored it: no currency, no class_version."""
    state = {
        "timestamp": "2025-06-01T12:00:00.000001Z",
        "actor_user_id": 3,
        "actor_api_key_id": None,
        "correlation_id": "req-old",
        "amount": amount,
    }
    return StoredEvent(
        originator_id=gadget_uuid(1),
        originator_version=2,
        topic=get_topic(Gadget.Priced),
        state=msgspec.json.encode(state),
    )


def test_a_version_1_event_is_upcast_when_decoded(mapper: MsgspecMapper) -> None:
    event = mapper.to_domain_event(v1_priced(250))
    assert type(event) is Gadget.Priced
    assert event.currency == "EUR", "the upcaster did not fill the new field"
    assert (event.amount, event.originator_id, event.originator_version) == (250, gadget_uuid(1), 2)
    assert (event.actor_user_id, event.actor_api_key_id, event.correlation_id) == (3, None, "req-old")
    assert event.timestamp == datetime(2025, 6, 1, 12, 0, 0, 1, tzinfo=timezone.utc)


def test_an_aggregate_is_rebuilt_from_a_mix_of_old_and_new_event_versions(mapper: MsgspecMapper) -> None:
    gadget = Gadget.make(ACTOR, 1, "lamp")
    made = mapper.to_stored_event(gadget.collect_events()[0])
    rebuilt = None
    for stored in (made, v1_priced(250)):
        rebuilt = mapper.to_domain_event(stored).mutate(rebuilt)
    assert rebuilt is not None
    assert (rebuilt.name, rebuilt.price, rebuilt.currency, rebuilt.version) == ("lamp", 250, "EUR", 2)
    rebuilt.set_price(ACTOR, 300, "USD")
    newer = rebuilt.collect_events()[0]
    assert round_trip(mapper, newer) == newer
    assert round_trip(mapper, newer).currency == "USD"


def test_a_new_event_is_stored_with_its_class_version(mapper: MsgspecMapper) -> None:
    gadget = Gadget.make(ACTOR, 2, "desk")
    gadget.set_price(ACTOR, 99, "GBP")
    made, priced = (mapper.to_stored_event(e) for e in gadget.collect_events())
    assert "class_version" not in msgspec.json.decode(made.state)
    state = msgspec.json.decode(priced.state)
    assert state["class_version"] == 2
    assert (state["amount"], state["currency"]) == (99, "GBP")
    # a version 2 event is not upcast again: its own currency stays
    assert mapper.to_domain_event(priced).currency == "GBP"


def test_an_old_event_without_its_upcaster_is_a_mapper_error(mapper: MsgspecMapper) -> None:
    stored = v1_priced(1)
    state = msgspec.json.decode(stored.state)
    state["class_version"] = 0  # a version no upcaster exists for
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(StoredEvent(stored.originator_id, 2, stored.topic, msgspec.json.encode(state)))
