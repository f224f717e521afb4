"""A msgspec Mapper for the event store: events are stored as compact JSON.

eventsourcing 9.5.6 has no msgspec mapper. Its default JSON transcoder needs a transcoding
per non-JSON type; msgspec encodes UUID, datetime and tuples natively and restores them from
the event classes' annotations, about 3x faster and half the size. Class-version upcasting
works as the library's own Mapper does it (`upcast_vN_vN+1` static methods on the class)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from domain.errors import InvalidInput
from domain.sealed import SEALED_KEYS, Sealed, erased_for
from domain.users import User, user_uuid
from infrastructure.content_keys import KeyRing, SealedContentDamaged, ShreddingCipher

_encoder = msgspec.json.Encoder()
_decode = msgspec.json.decode


@lru_cache(maxsize=None)
def _event_class(topic: str) -> type:
    return resolve_topic(topic)


class MsgspecMapper(Mapper):
    """Stores `vars(event)` without the originator id and version (they have their own columns).

    With a ShreddingCipher (CIPHER_TOPIC, set by infrastructure/eventstore.py) the fields an
    event class names in `sealed_fields` are stored as `Sealed` values under their owner's
    data key (domain/sealed.py), and read back as plaintext, or as erased once the key is
    gone. Fields stored as plaintext (events written before sealing) are read as they are,
    unless their owner has been erased since."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys: KeyRing | None = None
        if isinstance(self.cipher, ShreddingCipher):
            self.keys, self.cipher = self.cipher.ring, None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        fields = _sealed_fields(type(domain_event))
        if fields and self.keys is not None:
            self._seal(type(domain_event), state, originator_id, fields)
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        data = _encoder.encode(state)
        if _NUL in data and _holds_nul(state):
            # PostgreSQL text and jsonb cannot hold U+0000: a read model there could never
            # apply this event. Refused on every backend, before anything is stored.
            raise InvalidInput("Text may not contain the NUL character (U+0000); remove it and try again.")
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(type(domain_event)),
            state=data,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """The event; `stored_event.originator_id` may be a UUID or its text (32 hex digits
        or the dashed form), as a row read straight from the store holds it."""
        cls = _event_class(stored_event.topic)
        try:
            data = self._unwrap(stored_event.state)
            if _straight(cls, data):
                # Decoded straight into the class, the ids spliced in front: half the time of
                # a dict converted afterwards (a rebuild decodes every stored event).
                return self._read(stored_event, _decoder(cls).decode(_with_ids(stored_event, data)))  # type: ignore[union-attr]
            state = self._opened(stored_event, cls, data)
            return self._read(stored_event, msgspec.convert(state, type=cls, strict=False))
        except (msgspec.ValidationError, msgspec.DecodeError, AttributeError, KeyError, SealedContentDamaged) as e:
            raise _undecodable(stored_event, e) from e

    def to_plain_state(self, stored_event: StoredEvent) -> bytes:
        """The event as JSON that `from_plain_state` decodes straight into its class: sealed
        fields opened (or erased), upcast to the class's version, the ids included. For a
        rebuild's workers: the JSON is read and the content opened in one process, and only
        the event's construction is left to the process that applies it."""
        cls = _event_class(stored_event.topic)
        try:
            data = self._unwrap(stored_event.state)
            if _straight(cls, data):
                plain = _with_ids(stored_event, data)
            elif self.keys is not None and _CLASS_VERSION not in data and data[:1] == b"{":
                plain = self._opened_raw(stored_event, cls, data)
            else:
                plain = _encoder.encode(self._opened(stored_event, cls, data))
        except (msgspec.ValidationError, msgspec.DecodeError, AttributeError, KeyError, SealedContentDamaged) as e:
            raise _undecodable(stored_event, e) from e
        self._forget_if_erased(stored_event.topic, stored_event.originator_id)
        return plain

    def from_plain_state(self, topic: str, plain: bytes) -> Any:
        """The event from `to_plain_state`'s JSON."""
        try:
            event = _plain_decoder(_event_class(topic)).decode(plain)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise MapperDeserialisationError(f"Failed to decode {topic} from its opened state: {e}") from e
        self._forget_if_erased(topic, event.originator_id)
        return event

    def _unwrap(self, data: bytes) -> bytes:
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        return data

    def _opened(self, stored_event: StoredEvent, cls: type, data: bytes) -> dict[str, Any]:
        """The decoded state with the ids, its sealed fields opened, upcast to the class's version."""
        state: dict[str, Any] = _decode(data)
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        fields = _sealed_fields(cls)
        if fields:
            self.open_sealed(cls, state, fields)
        from_version = state.pop("class_version", 1)
        while from_version < getattr(cls, "class_version", 1):
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        return state

    def _opened_raw(self, stored_event: StoredEvent, cls: type, data: bytes) -> bytes:
        """`_opened`, as JSON, without decoding what is not sealed: the other fields stay as
        stored and opened content is its plaintext JSON, each copied once (most of a chat
        event's bytes are its prompt and reply)."""
        keys: KeyRing = self.keys  # type: ignore[assignment]
        state = _raw_members.decode(data)
        owner_field = getattr(cls, "sealed_owner", None)
        owner = _user_uuid(int(_decode(state[owner_field]))) if owner_field is not None \
            else _uuid(stored_event.originator_id)
        for name in _sealed_fields(cls):
            raw = state.get(name)
            if raw is None:
                continue
            value = memoryview(raw)
            if value[:1] == b"{":
                found, plain = keys.open_json(owner, name, _sealed.decode(value))
                state[name] = msgspec.Raw(plain) if found else _raw_erased(cls)[name]
            elif value not in _NO_CONTENT and keys.is_erased(owner):
                state[name] = _raw_erased(cls)[name]  # plaintext of an old event whose owner was erased
        state["originator_id"] = msgspec.Raw(_encoder.encode(stored_event.originator_id))
        state["originator_version"] = msgspec.Raw(b"%d" % stored_event.originator_version)
        return _encoder.encode(state)

    def _read(self, stored_event: StoredEvent, event: Any) -> Any:
        self._forget_if_erased(stored_event.topic, event.originator_id)
        return event

    def _forget_if_erased(self, topic: str, owner: Any) -> None:
        if self.keys is not None and topic == _ERASED_TOPIC:
            self.keys.forget(_uuid(owner))  # erased elsewhere: drop this process's keys

    def _seal(self, cls: type, state: dict[str, Any], originator_id: Any, fields: tuple[str, ...]) -> None:
        owner = content_owner(cls, state, originator_id)
        for name in fields:
            value = state.get(name)
            if _has_content(value):
                plain = _encoder.encode(value)
                if _NUL in plain and _holds_nul(value):  # checked here: sealed, it could not be seen below
                    raise InvalidInput("Text may not contain the NUL character (U+0000); remove it and try again.")
                state[name] = self.keys.seal_json(owner, name, plain)  # type: ignore[union-attr]

    def open_sealed(self, cls: type, state: dict[str, Any], fields: tuple[str, ...]) -> None:
        """Opens, in place in a decoded state, each of `fields` that is sealed; erased content, and
        plaintext left by an owner since erased, become the field's erased value."""
        owner = content_owner(cls, state, state["originator_id"])
        erased = _erased_values(cls)
        for name in fields:
            value = state.get(name)
            if isinstance(value, dict) and value.keys() == SEALED_KEYS:
                if self.keys is None:
                    raise MapperDeserialisationError(f"{cls.__qualname__}.{name} is sealed; this store has no key ring")
                found, plain = self.keys.open(owner, name, msgspec.convert(value, Sealed))
                state[name] = plain if found else erased[name]
            elif self.keys is not None and _has_content(value) and self.keys.is_erased(owner):
                state[name] = erased[name]  # plaintext of an old event whose owner was erased


_ERASED_TOPIC = get_topic(User.Erased)


def _undecodable(stored_event: StoredEvent, error: Exception) -> MapperDeserialisationError:
    return MapperDeserialisationError(f"Failed to decode stored event {stored_event.topic} "
                                      f"{stored_event.originator_id} v{stored_event.originator_version}: {error}")


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _straight(cls: type, data: bytes) -> bool:
    """The stored state decodes straight into `cls`: nothing sealed, no upcast, not empty."""
    return (not _sealed_fields(cls) and _decoder(cls) is not None and _CLASS_VERSION not in data
            and data[:1] == b"{" and data[1:2] != b"}")


def _with_ids(stored_event: StoredEvent, data: bytes) -> bytes:
    """The stored state (a JSON object with at least one member) with the ids spliced in front."""
    return b'{"originator_id":%b,"originator_version":%d,' % (
        _encoder.encode(stored_event.originator_id), stored_event.originator_version) + data[1:]


@lru_cache(maxsize=None)
def _sealed_fields(cls: type) -> tuple[str, ...]:
    return tuple(getattr(cls, "sealed_fields", ()))


@lru_cache(maxsize=None)
def _erased_values(cls: type) -> dict[str, Any]:
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    return {name: erased_for(types[name]) for name in _sealed_fields(cls)}


def content_owner(cls: type, state: dict[str, Any], originator_id: Any) -> UUID:
    """Whose content the event holds: the user named by its `sealed_owner` field, or (None)
    the User aggregate the event belongs to."""
    field = getattr(cls, "sealed_owner", None)
    if field is not None:
        return _user_uuid(int(state[field]))
    return _uuid(originator_id)


_user_uuid = lru_cache(maxsize=1 << 16)(user_uuid)  # uuid5 is a SHA-1: worth keeping


def _has_content(value: Any) -> bool:
    return value is not None and value != "" and value != []


_CLASS_VERSION = b'"class_version":'
_NUL = b"\\u0000"  # how msgspec writes U+0000 (also the tail of an escaped backslash + "u0000")


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds_nul(v) for v in value)
    if isinstance(value, msgspec.Struct):
        return any(_holds_nul(getattr(value, f)) for f in value.__struct_fields__)
    if dataclasses.is_dataclass(value):
        return any(_holds_nul(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


@lru_cache(maxsize=None)
def _decoder(cls: type) -> msgspec.json.Decoder[Any] | None:
    """A decoder straight into `cls`, unless its stored states may need upcasting."""
    return msgspec.json.Decoder(cls, strict=False) if getattr(cls, "class_version", 1) == 1 else None


_raw_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_sealed = msgspec.json.Decoder(Sealed)
_NO_CONTENT = (b"null", b'""', b"[]")  # what `_has_content` calls empty, as msgspec writes it


@lru_cache(maxsize=None)
def _raw_erased(cls: type) -> dict[str, msgspec.Raw]:
    return {name: msgspec.Raw(_encoder.encode(value)) for name, value in _erased_values(cls).items()}


@lru_cache(maxsize=None)
def _plain_decoder(cls: type) -> msgspec.json.Decoder[Any]:
    """A decoder straight into `cls` of an opened, upcast state (`to_plain_state`)."""
    return msgspec.json.Decoder(cls, strict=False)
