"""How secrets are kept: long random secrets (API keys, invite codes, sign-in tokens) are
stored as their SHA-256 hex digest. A fast hash is enough because the secrets carry at least
160 random bits; passwords use a slow hash (see `application.ports.PasswordHasher`)."""

from __future__ import annotations

import hashlib


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def chunk_hash(text: str) -> str:
    """The SHA-256 hex digest of a chunk's text: the embedding cache's key (not a secret)."""
    return hashlib.sha256(text.encode()).hexdigest()
