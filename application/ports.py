"""What the use cases need from outside, as Protocols; infrastructure/ provides the adapters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from domain.principal import Principal


class CachedPrincipal(msgspec.Struct, frozen=True):
    principal: Principal
    expires_at: float | None  # unix time the key expires, None = never


class PrincipalCache(Protocol):
    """Key-hash -> principal lookups, shared by every process when Redis is configured."""

    async def get(self, secret_hash: str) -> CachedPrincipal | None: ...

    async def put(self, secret_hash: str, entry: CachedPrincipal, ttl: int) -> None: ...

    def drop(self, secret_hashes: Iterable[str]) -> None:
        """Forget these keys at once (called from worker threads after a revocation)."""


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window resets


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> RateDecision: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password or no hash; spends the same time either way."""


class SessionTokens(Protocol):
    """Signed session tokens (JWT) for the internal, AnythingLLM-UI style routes."""

    def issue(self, user_id: int, username: str, token_version: int) -> str: ...

    def read(self, token: str) -> tuple[int, int] | None:
        """(user id, token version) of a valid, unexpired token, else None."""


class Embedder(Protocol):
    model_name: str
    dimensions: int
    max_tokens: int

    def embed(self, texts: list[str], batch_size: int = 64) -> Any:
        """(n, dimensions) float32 numpy array, L2-normalised (inner product = cosine)."""


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def chunk(self, text: str, size: int, overlap: int) -> list[str]: ...


class Blobs(Protocol):
    def put(self, data: bytes) -> str: ...

    def get(self, digest: str) -> bytes: ...


class SearchIndex(Protocol):
    """The per-process faiss indexes, kept in step with the vectors read model."""

    def search(self, workspace: str, query: Any, k: int) -> list[tuple[int, float]]: ...

    def count(self, workspace: str | None = None) -> int: ...


class ContentServices(msgspec.Struct):
    """The adapters the workspace and document use cases need (one bundle, built by the wiring)."""

    blobs: Any
    embedder: Any
    tokenizer: Any
    index: Any
    parse: Any  # (filename, data, content_type) -> ParsedDocument
    safe_filename: Any  # (name) -> name, or ValueError
    fetch: Any  # (url, headers) -> FetchedPage
    accepted_file_types: Any  # () -> dict[mime, list[ext]]
    secrets: Any  # SecretSettings
    max_upload_bytes: int = 50 << 20
