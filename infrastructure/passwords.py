"""Password hashing with Argon2id (argon2-cffi, a maintained binding of the reference code)."""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Hasher:
    def __init__(self) -> None:
        self._argon2 = _Argon2()
        # Verified against when there is no hash, so an unknown user costs as much as a known one.
        self._dummy = self._argon2.hash("ledgerllm-timing-equaliser")

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
