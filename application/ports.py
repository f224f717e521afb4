"""The services the use cases need from outside, as Protocols (clock, caches, hashing, models,
blobs, completions, ...). `infrastructure/` provides the adapters; `api/wiring.py` fills every
port in one place. The read models the use cases read are ports too: `application.views`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypedDict
from uuid import UUID

import msgspec

from domain.principal import Principal
from domain.sealed import Sealed

if TYPE_CHECKING:  # row Structs, for annotations only
    import numpy

    import application.audit  # noqa: F401
    import application.event_feed  # noqa: F401
    import application.rows  # noqa: F401


# services -----------------------------------------------------------------------------------
class Clock(Protocol):
    """The time, so that expiry and windows can be tested without sleeping."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""


class CachedPrincipal(msgspec.Struct, frozen=True):
    principal: Principal
    expires_at: float | None  # unix time the key expires, None = never


class PrincipalCache(Protocol):
    """Key-hash -> principal lookups, shared by every process when Redis is configured."""

    async def get(self, secret_hash: str) -> CachedPrincipal | None: ...

    async def put(self, secret_hash: str, entry: CachedPrincipal, ttl: int) -> None: ...

    def drop(self, secret_hashes: Iterable[str]) -> None:
        """Forget these keys at once (called from worker threads after a revocation). Never
        raises: a drop that cannot reach a shared cache is kept and retried by `flush`."""

    def flush(self) -> None:
        """Retry drops that could not reach the shared cache; raise while some remain."""


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


class ContentCipher(Protocol):
    """Seals personal content (domain/sealed.py) under its owner's data key and opens it again;
    the event store's mapper uses it on every write and read (infrastructure/content_keys.py)."""

    def seal(self, owner: UUID, field: str, value: object) -> Sealed: ...

    def open(self, owner: UUID, field: str, sealed: Sealed) -> tuple[bool, object]:
        """(True, the value), or (False, None) once the key is gone."""

    def forget(self, owner: UUID) -> None:
        """Drop this process's cached keys of `owner` (another process erased them)."""


class KeyStore(ContentCipher, Protocol):
    """The data keys, kept outside the event log and encrypted under the master key."""

    def destroy(self, owner: UUID) -> int:
        """Destroy every data key of `owner` (also on disk); how many there were."""


class SessionTokens(Protocol):
    """Signed session tokens (JWT) for the internal, AnythingLLM-UI style routes."""

    def issue(self, user_id: int, username: str, token_version: int) -> str: ...

    def read(self, token: str) -> tuple[int, int] | None:
        """(user id, token version) of a valid, unexpired token, else None."""


class Embedder(Protocol):
    model_name: str
    dimensions: int

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: list[str], batch_size: int = 64) -> numpy.ndarray:
        """(n, dimensions) float32 numpy array, L2-normalised (inner product = cosine)."""

    def warm(self) -> Embedder:
        """Load the model now (seconds), so the first request does not wait for it; returns itself."""


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def chunk(self, text: str, size: int, overlap: int) -> list[str]: ...

    def truncate_middle(self, text: str, max_tokens: int) -> str: ...


class Blobs(Protocol):
    """Content-addressed bytes (document originals and extracted text)."""

    def put(self, data: bytes) -> str:
        """Store `data`; return its SHA-256 hex digest (its address)."""

    def get(self, digest: str) -> bytes: ...


class VectorIndex(Protocol):
    """This process's nearest-neighbour indexes, one per workspace, following the vectors view."""

    def search(self, workspace: str, query: numpy.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine score) of the `k` nearest chunks, best first."""

    def count(self, workspace: str | None = None) -> int: ...


class ParsedText(Protocol):
    """What a parser extracted from a file."""

    text: str
    title: str
    mime: str
    metadata: dict[str, str]


class FetchedLink(Protocol):
    url: str  # after redirects
    content_type: str
    data: bytes
    filename: str


class SecretStore(Protocol):
    """Provider secrets set through the API, kept outside the event log (a 0600 file)."""

    def get(self, key: str) -> str | None: ...

    def keys(self) -> set[str]: ...

    def update(self, values: dict[str, str]) -> None: ...

    def discard(self, keys: Iterable[str]) -> None: ...


class Parse(Protocol):
    """Extract a file's text; ValueError for a file it cannot read."""

    def __call__(self, filename: str, data: bytes, content_type: str | None = None, /) -> ParsedText: ...


class Fetch(Protocol):
    """Get a link; ValueError for one it refuses or cannot get."""

    def __call__(self, url: str, /, *, headers: dict[str, str] | None = None) -> FetchedLink: ...


class ContentServices(msgspec.Struct):
    """The adapters the workspace, document and chat use cases need, built by the wiring.
    `parse` raises ValueError for a file it cannot read; `fetch` ValueError for a link it
    refuses or cannot get; `safe_filename` ValueError for a name it cannot make safe."""

    blobs: Blobs
    embedder: Embedder
    tokenizer: TokenCounter
    index: VectorIndex
    parse: Parse
    safe_filename: Callable[[str], str]
    fetch: Fetch
    accepted_file_types: Callable[[], dict[str, list[str]]]  # mime -> extensions
    secrets: SecretStore
    max_upload_bytes: int = 50 << 20


class WebhookTargets(Protocol):
    """The SSRF rules a webhook URL must pass (those of `upload-link`)."""

    def refusal(self, url: str) -> str | None:
        """Why `url` may not be called (not http(s), or a host that is not public), or None."""


class WebhookDeliveries(Protocol):
    """The delivery checkpoints, kept beside the store (not events: they change per delivery)."""

    def states(self) -> dict[int, application.rows.DeliveryState]: ...

    def unpark(self, webhook_id: int) -> int | None:
        """Let a parked webhook be sent again from the event it stopped at; that position, or
        None if it was not parked."""


class WebhookServices(msgspec.Struct):
    targets: WebhookTargets
    deliveries: WebhookDeliveries


class ImageGenerator(Protocol):
    """The configured image provider. `generate` raises `application.images.ImageProviderError`."""

    configured: bool

    def generate(self, prompt: str, size: str | None, references: list[bytes]) -> bytes: ...


# chat completions ---------------------------------------------------------------------------
JsonObject = dict[str, object]
"""A JSON object as upstream's shapes carry it (a source, an attachment's metadata)."""
Part = JsonObject
"""A part of a message's content: `{"type": "text", "text": ...}` or `{"type": "image_url", ...}`."""


class Message(TypedDict):
    """One chat message as OpenAI-compatible providers take it."""

    role: str  # system, user or assistant
    content: str | list[Part]


class CompletionConfig(Protocol):
    """Which model to call and how (the adapter's own config, made by `CompletionConfigs`)."""

    @property
    def model(self) -> str: ...


class CompletionConfigs(Protocol):
    def __call__(self, *, model: str, api_base: str | None, api_key: str | None,
                 timeout: float) -> CompletionConfig: ...


class TokenUsage(Protocol):
    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


class CompletionReply(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def usage(self) -> TokenUsage: ...


class CompletionChunk(Protocol):
    """A piece of a streamed reply; the last has `done` and the usage."""

    @property
    def text(self) -> str: ...

    @property
    def done(self) -> bool: ...

    @property
    def usage(self) -> TokenUsage | None: ...


class Completions(Protocol):
    """The chat model. Both calls raise `application.llm.CompletionFailed` (its message never
    holds a key); `cancel` set (the client went away) stops the upstream call."""

    def complete(self, config: CompletionConfig, messages: list[Message], *,
                 temperature: float | None = None) -> CompletionReply: ...

    def stream(self, config: CompletionConfig, messages: list[Message], *, temperature: float | None = None,
               cancel: threading.Event | None = None) -> Iterator[CompletionChunk]: ...

    def warm(self) -> None:
        """Load the client library now, so the first chat does not wait for it."""


class LLMDefaults(msgspec.Struct, frozen=True):
    """The model settings from the environment (operators set these)."""

    model: str | None
    api_base: str | None
    api_key: str | None
    context_window: int
    timeout: float
