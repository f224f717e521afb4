"""Wiring, in one place: which adapter fills which port, for the server and the CLI alike."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eventsourcing.persistence import TrackingRecorder
from eventsourcing.utils import get_topic

from application.authentication import hashes_affected_by
from application.ledger import Context, Ledger
from application.ids import IdBlocks
from application.llm import CompletionFailed, LLMDefaults
from application.ports import (
    Clock, CompletionChunk, CompletionConfig, CompletionReply, ContentServices, KeyStore, Message, Parse, RateLimiter,
    WebhookServices,
)
from application.views import EventFeed
from application.users import install
from domain.apikeys import ApiKey
from domain.users import User
from infrastructure.event_feed import StoreEventFeed
from infrastructure.eventstore import ledger_env, open_view
from infrastructure.memory_cache import MemoryPrincipalCache, MemoryRateLimiter
from infrastructure.passwords import Argon2Hasher
from infrastructure.settings import Settings
from infrastructure.tokens import JwtTokens, jwt_secret
from infrastructure.clock import SystemClock
from infrastructure.files import make_private
from infrastructure.parse_pool import ParserPool
from infrastructure.webhook_store import DeliveryStore
from infrastructure.webhooks import WebhookDeliverer, WebhookTargetCheck
from projections.accounts import Accounts
from projections.api_keys import ApiKeyListing
from projections.audit_log import AuditLog
from projections.base import SqlProjection
from projections.catalog import PROJECTIONS
from projections.chats import ChatHistory
from projections.library import Library
from projections.follower import Follower
from projections.runner import ProjectionRunner
from projections.vector_index import FaissFollower
from projections.vectors import Vectors, VectorsProjection

log = logging.getLogger("ledgerllm")

# Events after which a cached principal may be stale (changed elsewhere, e.g. by the CLI).
STALE_PRINCIPAL_TOPICS = frozenset(
    get_topic(c)
    for c in (ApiKey.Revoked, ApiKey.Expired, User.Suspended, User.Deleted, User.RoleChanged, User.Renamed,
              User.Erased)  # decoding it also drops this process's cached data keys of the user
)


@dataclass
class Runtime:
    settings: Settings
    ctx: Context
    limiter: RateLimiter
    runners: list[ProjectionRunner]
    follower: Follower | None = None
    closers: list[Any] = field(default_factory=list)
    parsers: Any = None  # the ParserPool: worker processes, stopped on close
    deliveries: DeliveryStore | None = None  # webhook checkpoints
    deliverer: WebhookDeliverer | None = None  # the server's webhook thread

    def runner(self, name: str) -> ProjectionRunner:
        return next(r for r in self.runners if r.name == name)

    @property
    def events(self) -> EventFeed:
        """The event feed: the store read in position order (stateless, cheap to make)."""
        return StoreEventFeed(self.ctx.ledger)

    def close(self) -> None:
        if self.deliverer:
            self.deliverer.stop()
        if self.follower:
            self.follower.stop()
        if self.deliveries:
            self.deliveries.close()
        if self.parsers:
            self.parsers.close()
        index = self.ctx.content.index
        if isinstance(index, FaissFollower):
            index.save()
        for runner in self.runners:
            runner.view.datastore.close()
            if isinstance(runner.projection, VectorsProjection):
                runner.projection.blobs.close()  # the PostgreSQL blob store's connection
        self.ctx.ledger.close()


def _drop_everywhere(ctx: Context, secret_hashes: list[str]) -> None:
    """The follower's callback for key and user events: forget the stale principals, and raise
    while the shared cache cannot be told (the follower then calls again with the same events)."""
    ctx.cache.drop(secret_hashes)
    ctx.cache.flush()


def open_runtime(settings: Settings, *, follow: bool = False, observe: Any = None,
                 observed_topics: frozenset[str] = frozenset(), clock: Clock | None = None,
                 webhook_outcome: Any = None) -> Runtime:
    """Open the store, the views and the adapters; install the owner on first start.

    `follow=True` (the server) starts a thread that keeps the views caught up with events
    written by other processes and drops cached principals those events made stale.

    `settings.read_only` (e.g. a replay made by `ledgerllm replay`): the views catch up with
    what is stored now and stay there; nothing is installed, followed or shared through Redis,
    and every save raises `ReadOnly` before it writes. A following server also delivers webhooks
    (`webhook_outcome(kind)`: told of each delivery's outcome, for the metrics)."""
    make_private(settings.data_dir)  # before SQLite creates a file in it
    ledger = Ledger(env=ledger_env(settings))
    if settings.read_only:
        ledger.read_only = ledger.recorder.max_notification_id() or 0
    shared = settings.redis_url is not None and not settings.read_only
    runners = {name: ProjectionRunner(ledger, make_projection(settings, name)) for name in PROJECTIONS}
    if shared:
        from infrastructure.redis_cache import RedisHealth, RedisPrincipalCache, RedisRateLimiter

        health = RedisHealth()
        cache: Any = RedisPrincipalCache(settings.redis_url, settings.redis_timeout, health)
        limiter: Any = RedisRateLimiter(settings.redis_url, settings.redis_timeout, settings.rate_limit_fallback,
                                        health)
    else:
        cache, limiter = MemoryPrincipalCache(), MemoryRateLimiter()
    vectors = Vectors(runners["vectors"])
    parsers = ParserPool.from_settings(settings)
    deliveries = DeliveryStore(settings)
    ctx = Context(
        ledger=ledger, clock=clock or SystemClock(),
        accounts=Accounts(runners["accounts"]), api_keys=ApiKeyListing(runners["api_keys"]),
        library=Library(runners["library"]), vectors=vectors, chats=ChatHistory(runners["chats"]),
        audit=AuditLog(runners["audit_log"]),
        hasher=Argon2Hasher(), cache=cache, tokens=JwtTokens(jwt_secret(settings), settings.jwt_expiry_seconds),
        content=_content(settings, runners["vectors"], parsers.parse), completions=CompletionsPort(),
        completions_config=_llm_config,
        llm_defaults=LLMDefaults(settings.llm_model, settings.llm_api_base, settings.llm_api_key,
                                 settings.llm_context_window, settings.llm_timeout),
        chat_ids=IdBlocks("chats"), images=ImagesPort(settings), keys=_key_store(ledger),
        owner_username=settings.owner_username,
        simple_sso_enabled=settings.simple_sso_enabled,
        webhooks=WebhookServices(WebhookTargetCheck(settings.link_allowlist), deliveries),
    )
    if not settings.read_only:
        install(ctx, settings.auth_token)
    ordered = list(runners.values())
    for runner in ordered:
        runner.catch_up()
    make_private(settings.data_dir)  # the files the store and the views created
    runtime = Runtime(settings, ctx, limiter, ordered, parsers=parsers, deliveries=deliveries)
    if shared:
        runtime.closers += [cache, limiter]
    if follow and not settings.read_only:
        runtime.follower = Follower(
            ledger, ordered, settings.projection_poll_seconds, STALE_PRINCIPAL_TOPICS,
            lambda events: _drop_everywhere(ctx, hashes_affected_by(ctx, events)),
            also=[ctx.content.index.sync], on_topics=observe, observed_topics=observed_topics,
        )
        runtime.follower.start()
        parsers.warm()
        runtime.deliverer = WebhookDeliverer(settings, ctx.accounts, runtime.events, ctx.content.secrets, deliveries,
                                             webhook_outcome or (lambda kind: None))
        runtime.deliverer.start()
    return runtime


def _key_store(ledger: Ledger) -> KeyStore:
    """The per-user data keys the ledger's mapper seals content with (ledger_env sets them up)."""
    keys = getattr(ledger.mapper, "keys", None)
    if keys is None:
        raise RuntimeError("the event store has no key ring: build its env with infrastructure.eventstore.ledger_env")
    return keys


def _content(settings: Settings, vectors: ProjectionRunner, parse: Parse) -> ContentServices:
    """Blobs, the parsers (`parse`: sandboxed worker processes), the link fetcher, the tokenizer,
    the embedding model (loaded on first use) and this process's faiss indexes, which follow
    the vectors read model."""
    from functools import partial

    from infrastructure import parsers
    from infrastructure.faiss_store import WorkspaceIndexes
    from infrastructure.fetch import fetch_link
    from infrastructure.secrets import SecretSettings

    embedder, tokenizer = vectors.projection.embedder, _tokenizer()
    indexes = partial(WorkspaceIndexes, approx_threshold=settings.vector_approx_threshold)
    index = FaissFollower(vectors.view, embedder.model_name, indexes, settings.data_dir / "faiss")
    return ContentServices(
        blobs=vectors.projection.blobs, embedder=embedder, tokenizer=tokenizer, index=index,
        parse=parse, safe_filename=parsers.safe_filename, accepted_file_types=parsers.accepted_file_types,
        fetch=partial(fetch_link, max_bytes=settings.link_max_bytes, timeout=settings.link_timeout,
                      allow_hosts=settings.link_allowlist),
        secrets=SecretSettings(settings.data_dir), max_upload_bytes=settings.upload_max_bytes,
    )


def make_projection(settings: Settings, name: str, view: TrackingRecorder | None = None) -> SqlProjection:
    """The read model `name` on its live view (or on `view`, e.g. a scratch one for a rebuild),
    with the adapters it needs: the vectors projection re-chunks document text from the blob
    store and takes vectors from its embedding cache (the model loads only on a miss).

    The live vectors view keeps embedding with the model its vectors come from, whatever
    EMBED_BACKEND says (a warning names the rebuild that switches); a rebuild's copy (`view`
    given) embeds with EMBED_BACKEND's model."""
    cls = PROJECTIONS[name]
    live = view is None
    if view is None:
        view = open_view(settings, name, cls.views())
    if cls is VectorsProjection:
        from infrastructure.pg_blobs import blob_store

        blobs = blob_store(settings)  # PostgreSQL when DATABASE_URL is set: every machine reaches it
        backend = _vectors_backend(settings, view) if live else settings.embed_backend
        embedder, tokenizer = _shared_models(backend, settings.embed_cache_dir)
        projection = VectorsProjection(view, model=embedder.model_name, chunker=tokenizer.chunk,
                                       text_source=lambda digest: blobs.get(digest).decode(), embed=embedder.embed)
        projection.embedder = embedder  # the server's use cases embed with the same model
        projection.blobs = blobs  # and keep blobs in the same store
        return projection
    return cls(view)


def _vectors_backend(settings: Settings, view: Any) -> str:
    """The backend whose vectors the read model holds (EMBED_BACKEND's while it holds none)."""
    from infrastructure.embedder import BACKENDS, model_id
    from projections.vectors import recorded_model

    recorded = recorded_model(view)
    wanted = model_id(settings.embed_backend)
    if recorded is None or recorded == wanted:
        return settings.embed_backend
    for backend in BACKENDS:
        if model_id(backend) == recorded:
            log.warning("the vectors were made with %s; EMBED_BACKEND=%s (%s) takes effect after "
                        "`ledgerllm projections rebuild vectors` re-embeds them", recorded, settings.embed_backend, wanted)
            return backend
    log.error("the vectors were made with %s, which this version cannot compute; run `ledgerllm projections "
              "rebuild vectors` to re-embed them with %s", recorded, wanted)
    return settings.embed_backend


@lru_cache(maxsize=4)
def _shared_models(backend: str, cache_dir: Any) -> tuple[Any, Any]:
    """One embedding model per backend and one tokenizer per process, whatever number of runtimes."""
    from infrastructure.embedder import LocalEmbedder

    return LocalEmbedder(backend=backend, cache_dir=cache_dir), _tokenizer()


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from infrastructure.tokenizer import Tokenizer

    return Tokenizer()


class CompletionsPort:
    """The litellm adapter behind the application's port: its errors become CompletionFailed.
    litellm is imported on the first chat, not at start-up (it takes seconds)."""

    def __init__(self) -> None:
        self._adapter: Any = None

    def _get(self) -> Any:
        if self._adapter is None:
            from infrastructure.completions import LiteLLMCompletions, load_litellm

            load_litellm()
            self._adapter = LiteLLMCompletions()
        return self._adapter

    def warm(self) -> None:
        """Import litellm now (seconds), so the first chat does not wait for it."""
        from infrastructure.completions import load_litellm

        load_litellm()
        self._get()

    @property
    def loaded(self) -> bool:
        return self._adapter is not None

    def complete(self, config: CompletionConfig, messages: list[Message], *,
                 temperature: float | None = None) -> CompletionReply:
        from infrastructure.completions import CompletionError

        try:
            return self._get().complete(config, messages, temperature=temperature)
        except CompletionError as e:
            raise CompletionFailed(e.message, e.kind, e.status) from None

    def stream(self, config: CompletionConfig, messages: list[Message], *, temperature: float | None = None,
               cancel: threading.Event | None = None) -> Iterator[CompletionChunk]:
        from infrastructure.completions import CompletionError

        try:
            yield from self._get().stream(config, messages, temperature=temperature, cancel=cancel)
        except CompletionError as e:
            raise CompletionFailed(e.message, e.kind, e.status) from None


def _llm_config(*, model: str, api_base: str | None, api_key: str | None, timeout: float) -> CompletionConfig:
    from infrastructure.completions import LLMConfig

    return LLMConfig(model=model, api_base=api_base, api_key=api_key, timeout=timeout)


class ImagesPort:
    """The litellm image adapter behind the application's port: its errors become
    ImageProviderError. litellm is imported on the first image, not at start-up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.configured = bool(settings.image_model)

    def generate(self, prompt: str, size: str | None, references: list[bytes]) -> bytes:
        from application.images import ImageProviderError
        from infrastructure.images import ImageConfig, ImageError, LiteLLMImages

        s = self.settings
        config = ImageConfig(s.image_model, s.image_api_base or s.llm_api_base, s.image_api_key or s.llm_api_key,
                             s.image_size, s.llm_timeout)
        try:
            return LiteLLMImages(config).generate(prompt, size, references)
        except ImageError as e:
            raise ImageProviderError(e.message, e.status) from None
