"""The mapper decodes events from rows as the store holds them: the aggregate id as a UUID or
as its text (SQLite keeps 32 hex digits), straight into the event class, with the same result
as decoding the state to a dict and converting it. With a key ring, sealed fields read back as
they were written, and as erased once their key is gone or their owner was erased."""

from __future__ import annotations

import base64
import os
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import pytest
from eventsourcing.persistence import JSONTranscoder, MapperDeserialisationError
from eventsourcing.utils import resolve_topic

from infrastructure.content_key_store import MemoryBackend
from infrastructure.content_keys import KeyRing
from infrastructure.mapper import MsgspecMapper, content_owner
from tests.unit.test_domain_rules import every_kind_of_event
from tests.unit.test_mapper import ACTOR


class Row(NamedTuple):  # what the runner hands the mapper: a row read straight from the store
    originator_id: Any
    originator_version: int
    topic: str
    state: bytes


def converted(row: Row) -> Any:
    """The event as a dict converted to the class gives it (the mapper's general path)."""
    state = msgspec.json.decode(row.state)
    state.update(originator_id=UUID(str(row.originator_id)), originator_version=row.originator_version)
    return msgspec.convert(state, type=resolve_topic(row.topic), strict=False)


@pytest.mark.parametrize("form", ["uuid", "hex", "dashed"])
def test_every_event_decodes_the_same_from_a_row_whatever_form_its_id_has(form: str) -> None:
    mapper = MsgspecMapper(transcoder=JSONTranscoder())
    for event in every_kind_of_event(ACTOR):
        stored = mapper.to_stored_event(event)
        oid = {"uuid": stored.originator_id, "hex": stored.originator_id.hex,
               "dashed": str(stored.originator_id)}[form]
        row = Row(oid, stored.originator_version, stored.topic, stored.state)
        back = mapper.to_domain_event(row)
        assert type(back) is type(event) and back == event == converted(row)
        assert vars(back) == vars(event) and isinstance(back.originator_id, UUID)


def test_a_row_with_a_broken_id_or_state_raises_a_mapper_error() -> None:
    mapper = MsgspecMapper(transcoder=JSONTranscoder())
    stored = mapper.to_stored_event(every_kind_of_event(ACTOR)[0])
    for row in (Row("not-a-uuid", stored.originator_version, stored.topic, stored.state),
                Row(stored.originator_id.hex, stored.originator_version, stored.topic, b'{"timestamp": 3')):
        with pytest.raises(MapperDeserialisationError):
            mapper.to_domain_event(row)


# sealed content ------------------------------------------------------------------------------
def sealing_mapper(ring: KeyRing | None = None) -> MsgspecMapper:
    mapper = MsgspecMapper(transcoder=JSONTranscoder())
    mapper.keys = ring or KeyRing(MemoryBackend(), os.urandom(32))
    return mapper


def opened_and_converted(mapper: MsgspecMapper, stored: Any) -> Any:
    """The event built step by step: the state as a dict, its sealed fields opened in it, then
    converted (what the mapper does for a sealed event)."""
    cls = resolve_topic(stored.topic)
    state = msgspec.json.decode(stored.state)
    state.update(originator_id=UUID(str(stored.originator_id)), originator_version=stored.originator_version)
    mapper.open_sealed(cls, state, sealed_fields(cls))
    return msgspec.convert(state, type=cls, strict=False)


def sealed_fields(cls: type) -> tuple[str, ...]:
    return tuple(getattr(cls, "sealed_fields", ()))


def sealed_events() -> list[Any]:
    events = [e for e in every_kind_of_event(ACTOR) if sealed_fields(type(e))]
    assert len({type(e) for e in events}) >= 3, "too few kinds of sealed event to compare"
    return events


def test_sealed_events_read_back_as_they_were_sealed() -> None:
    mapper = sealing_mapper()
    for event in sealed_events():
        stored = mapper.to_stored_event(event)
        back = mapper.to_domain_event(Row(stored.originator_id.hex, stored.originator_version, stored.topic,
                                          stored.state))
        assert type(back) is type(event) and back == event == opened_and_converted(mapper, stored)
        assert vars(back) == vars(event)


def test_sealed_content_without_its_key_or_plaintext_of_an_erased_owner_reads_as_erased() -> None:
    sealing, plain = sealing_mapper(), MsgspecMapper(transcoder=JSONTranscoder())
    events = sealed_events()
    sealed = [sealing.to_stored_event(e) for e in events]
    old = [plain.to_stored_event(e) for e in events]  # written before sealing: plaintext
    ring = KeyRing(MemoryBackend(), os.urandom(32))  # another store: none of the keys
    for event in events:
        ring.destroy(content_owner(type(event), vars(event), event.originator_id))
    reader = sealing_mapper(ring)
    erased_fields = 0
    for event, stored in [*zip(events, sealed), *zip(events, old)]:
        back = reader.to_domain_event(stored)
        assert back == opened_and_converted(reader, stored)
        for name in sealed_fields(type(event)):
            if getattr(event, name) not in (None, "", []):
                assert getattr(back, name) != getattr(event, name)
                erased_fields += 1
        assert [getattr(back, f) for f in vars(event) if f not in sealed_fields(type(event))] == \
               [getattr(event, f) for f in vars(event) if f not in sealed_fields(type(event))]
    assert erased_fields >= 8


def a_sealed_field(mapper: MsgspecMapper) -> tuple[Any, Any, dict[str, Any], str, str]:
    """An event with a field stored sealed: (event, stored, decoded state, the field's name, its
    ciphertext with one bit flipped, in base64)."""
    event, stored, state, name = next(
        (e, stored, state, f) for e in sealed_events()
        for stored in [mapper.to_stored_event(e)] for state in [msgspec.json.decode(stored.state)]
        for f in sealed_fields(type(e)) if isinstance(state.get(f), dict))
    flipped = bytearray(base64.b64decode(state[name]["ciphertext"]))
    flipped[0] ^= 1
    return event, stored, state, name, base64.b64encode(bytes(flipped)).decode()


def test_a_damaged_sealed_field_is_a_mapper_error_never_a_wrong_value() -> None:
    mapper = sealing_mapper()
    event, stored, state, name, flipped = a_sealed_field(mapper)
    good = state[name]
    damaged = [
        {**good, "nonce": "not base64!"},
        {**good, "ciphertext": "A" + good["ciphertext"]},  # one character too many
        {**good, "key_id": 7},
        {**good, "nonce": 12},
        {**good, "ciphertext": flipped},  # does not authenticate
        {**good, "key_id": "no-such-key"},
    ]
    assert mapper.to_domain_event(stored) == event
    for value in damaged:
        row = Row(stored.originator_id.hex, stored.originator_version, stored.topic,
                  msgspec.json.encode({**state, name: value}))
        try:
            back = mapper.to_domain_event(row)
        except MapperDeserialisationError:
            continue
        # an unknown key reads as erased content (its key was destroyed), never as the plaintext
        assert value["key_id"] == "no-such-key" and getattr(back, name) != getattr(event, name)


# decoded in one process, constructed in another (a rebuild's workers) ------------------------
def through_plain_state(mapper: MsgspecMapper, row: Any) -> Any:
    """The event as a rebuild's worker and the rebuilding process make it between them."""
    plain = mapper.to_plain_state(row)
    assert isinstance(plain, bytes)
    return mapper.from_plain_state(row.topic, plain)


def test_every_event_is_the_same_through_its_opened_state() -> None:
    plain, sealing = MsgspecMapper(transcoder=JSONTranscoder()), sealing_mapper()
    for mapper in (plain, sealing):
        for event in every_kind_of_event(ACTOR):
            stored = mapper.to_stored_event(event)
            for oid in (stored.originator_id, stored.originator_id.hex):
                row = Row(oid, stored.originator_version, stored.topic, stored.state)
                back = through_plain_state(mapper, row)
                assert type(back) is type(event) and back == event == mapper.to_domain_event(row)
                assert vars(back) == vars(event)


def test_through_its_opened_state_erased_content_reads_as_erased_as_it_does_directly() -> None:
    sealing, plain = sealing_mapper(), MsgspecMapper(transcoder=JSONTranscoder())
    events = sealed_events()
    stored = [sealing.to_stored_event(e) for e in events] + [plain.to_stored_event(e) for e in events]
    ring = KeyRing(MemoryBackend(), os.urandom(32))  # another store: none of the keys
    for event in events:
        ring.destroy(content_owner(type(event), vars(event), event.originator_id))
    reader = sealing_mapper(ring)
    erased = 0
    for event, row in zip(events * 2, stored):
        back = through_plain_state(reader, row)
        assert back == reader.to_domain_event(row)
        erased += sum(getattr(back, f) != getattr(event, f) for f in sealed_fields(type(event)))
    assert erased >= 8


def test_a_damaged_sealed_field_is_a_mapper_error_through_the_opened_state_too() -> None:
    mapper = sealing_mapper()
    event, stored, state, name, flipped = a_sealed_field(mapper)
    good = state[name]
    for value in ({**good, "nonce": "not base64!"}, {**good, "key_id": 7}, {**good, "extra": 1},
                  {**good, "ciphertext": flipped}):
        row = Row(stored.originator_id.hex, stored.originator_version, stored.topic,
                  msgspec.json.encode({**state, name: value}))
        with pytest.raises(MapperDeserialisationError):
            mapper.to_plain_state(row)
    with pytest.raises(MapperDeserialisationError):  # what a worker sent does not construct
        mapper.from_plain_state(stored.topic, b'{"originator_id": "x"}')
