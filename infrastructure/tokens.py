"""Session tokens: JWTs signed with Litestar's `Token` (PyJWT underneath).

Revocable: each token carries the user's token version (`tv`); a password change, a
suspension, a deletion or `users revoke-sessions` bumps it in the read model."""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path


from infrastructure.settings import Settings

ALGORITHM = "HS256"


class JwtTokens:
    def __init__(self, secret: str, expiry_seconds: int) -> None:
        self._secret = secret
        self._expiry = timedelta(seconds=expiry_seconds)

    def issue(self, user_id: int, username: str, token_version: int) -> str:
        from litestar.security.jwt import Token  # here: CLI commands that sign no one in skip importing Litestar

        token = Token(
            exp=datetime.now(timezone.utc) + self._expiry,
            sub=str(user_id),
            extras={"id": user_id, "username": username, "tv": token_version},
        )
        return token.encode(self._secret, ALGORITHM)

    def read(self, token: str) -> tuple[int, int] | None:
        from litestar.exceptions import NotAuthorizedException
        from litestar.security.jwt import Token

        try:
            decoded = Token.decode(token, self._secret, ALGORITHM)
            return int(decoded.sub), int(decoded.extras.get("tv", 0))
        except (NotAuthorizedException, ValueError, TypeError):
            return None


def jwt_secret(settings: Settings) -> str:
    """JWT_SECRET, or a random one kept in DATA_DIR/jwt-secret (mode 0600) across restarts.

    Several machines must share JWT_SECRET: a file on one machine is not enough there."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / "jwt-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
