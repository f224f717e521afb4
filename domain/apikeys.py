"""The ApiKey aggregate: issued to a user, known to the store only by hash and prefix."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import InvalidInput
from domain.principal import ALL_SCOPES, Actor

SECRET_PREFIX = "sk-"
# Upstream's keys are 31 characters and its official CLI refuses any other length:
# "sk-" and 28 URL-safe base64 characters, which are 21 random bytes (168 bits).
SECRET_RANDOM_BYTES = 21
SECRET_LENGTH = 31
# Characters of the secret after "sk-" kept for display: 24 bits shown, 144 stay secret.
# Keys issued before kept 8 characters; their stored prefixes stay as they are.
DISPLAY_CHARS = 4
NAME_MAX = 200
MAX_RATE_LIMIT = 1_000_000
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# A key lives at most this long, so its expiry stays within the years a timestamp holds
# (`999999w` is 19,000 years). A key without an expiry never expires.
MAX_LIFETIME = timedelta(days=36_525)  # 100 years


def api_key_uuid(key_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/api-keys/{key_id}")


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `15m`, `2w`, `90s` -> timedelta; anything else is refused."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"Invalid duration {text!r}: use a number and a unit, e.g. 30d, 12h, 15m.")
    duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if duration > MAX_LIFETIME:
        raise InvalidInput(f"Invalid duration {text!r}: at most 100 years (36525d); leave it out for a key "
                           "that never expires.")
    return duration


def check_scopes(scopes: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """None means full access, as upstream keys have. An empty list is refused."""
    if scopes is None:
        return ALL_SCOPES
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown or not scopes:
        raise InvalidInput(f"Invalid scopes {unknown or scopes}: use any of {', '.join(ALL_SCOPES)}.")
    return tuple(s for s in ALL_SCOPES if s in scopes)


def check_rate_limit(limit: int | None) -> int | None:
    if limit is not None and not (1 <= limit <= MAX_RATE_LIMIT):
        raise InvalidInput(f"rateLimit must be between 1 and {MAX_RATE_LIMIT} requests per minute.")
    return limit


class ApiKey(Audited):
    class Issued(Audited.Created):
        key_id: int
        user_id: int
        name: str | None
        secret_hash: str
        display_prefix: str
        scopes: tuple[str, ...]
        expires_at: datetime | None
        rate_limit: int | None

        def apply(self, key: ApiKey) -> None:
            key.key_id = self.key_id
            key.user_id = self.user_id
            key.name = self.name
            key.secret_hash = self.secret_hash
            key.display_prefix = self.display_prefix
            key.scopes = tuple(self.scopes)
            key.expires_at = self.expires_at
            key.rate_limit = self.rate_limit
            key.revoked = False
            key.expired = False

    class Revoked(Audited.Event):
        reason: str

        def apply(self, key: ApiKey) -> None:
            key.revoked = True

    class Expired(Audited.Event):
        """Recorded when the server first refuses the key after its expiry."""

        def apply(self, key: ApiKey) -> None:
            key.expired = True


    @classmethod
    def issue(
        cls,
        actor: Actor,
        key_id: int,
        user_id: int,
        secret_hash: str,
        display_prefix: str,
        name: str | None = None,
        scopes: tuple[str, ...] = ALL_SCOPES,
        expires_at: datetime | None = None,
        rate_limit: int | None = None,
    ) -> ApiKey:
        name = (name or "").strip() or None
        if name is not None and len(name) > NAME_MAX:
            raise InvalidInput(f"Key name must be at most {NAME_MAX} characters.")
        return cls._create(
            cls.Issued,
            id=api_key_uuid(key_id),
            **actor.stamp(),
            key_id=key_id,
            user_id=user_id,
            name=name,
            secret_hash=secret_hash,
            display_prefix=display_prefix,
            scopes=check_scopes(scopes),
            expires_at=expires_at,
            rate_limit=check_rate_limit(rate_limit),
        )

    def revoke(self, actor: Actor, reason: str = "revoked") -> bool:
        """Revoke once; revoking a revoked key records nothing and returns False."""
        if self.revoked:
            return False
        self._record(self.Revoked, actor, reason=reason)
        return True

    def is_expired_at(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def mark_expired(self, actor: Actor, now: datetime) -> bool:
        if self.expired or self.revoked or not self.is_expired_at(now):
            return False
        self._record(self.Expired, actor)
        return True
