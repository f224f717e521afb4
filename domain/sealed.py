"""Personal content kept sealed in events (crypto-shredding).

An event class that carries personal content names those fields in `sealed_fields` and says
whose content it is in `sealed_owner` (the field holding the owner's user id, or None: the
event's aggregate is the owner's User). The store keeps each such field as a `Sealed` value,
encrypted under the owner's data key, which lives outside the event log; erasing the user
destroys that key, and from then on the field reads as `erased_for(its annotation)`. The domain sees
plaintext only: sealing and opening happen where events are stored and read."""

from __future__ import annotations

import msgspec

ERASED = "[erased]"
REASON_MAX = 500


class Sealed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The stored form of one sealed field: which data key, its nonce, and the ciphertext of
    the field's JSON (AES-GCM, so it also authenticates)."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


SEALED_KEYS = frozenset(Sealed.__struct_fields__)


def erased_for(annotation: str) -> object:
    """What a sealed field of this annotation reads as once its key is gone: text becomes
    ERASED, a list empty, an optional value (a file name) None."""
    if annotation.startswith("list"):
        return []
    if "None" in annotation:
        return None
    return ERASED
