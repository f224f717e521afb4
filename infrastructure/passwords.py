"""Password hashing with Argon2id (argon2-cffi, a maintained binding of the reference code)."""

from __future__ import annotations

import threading

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Hasher:
    def __init__(self) -> None:
        self._argon2 = _Argon2()

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


_dummy: list[str] = []
_dummy_lock = threading.Lock()


def _dummy_hash() -> str:
    """Verified against when there is no hash, so an unknown user costs as much as a known one.
    Made on the first such sign-in, once per process (hashing costs a few hundred ms of CPU,
    which every runtime, and so every CLI command, paid at start-up before)."""
    if not _dummy:
        with _dummy_lock:
            if not _dummy:
                _dummy.append(_Argon2().hash("ledgerllm-timing-equaliser"))
    return _dummy[0]
