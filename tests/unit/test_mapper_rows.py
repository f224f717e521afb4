"""The mapper decodes events from rows as the store holds them: the aggregate id as a UUID or
as its text (SQLite keeps 32 hex digits), straight into the event class, with the same result
as decoding the state to a dict and converting it."""

from __future__ import annotations

from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import pytest
from eventsourcing.persistence import JSONTranscoder, MapperDeserialisationError
from eventsourcing.utils import resolve_topic

from infrastructure.mapper import MsgspecMapper
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
