"""Wiring, in one place: which adapter fills which port, for the server and the CLI alike."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eventsourcing.persistence import TrackingRecorder
from eventsourcing.utils import get_topic

from application.apikeys import hashes_affected_by
from application.ledger import Context, Ledger
from application.llm import CompletionFailed, IdBlocks, LLMDefaults
from application.ports import ContentServices, RateLimiter
from application.users import install
from domain.apikeys import ApiKey
from domain.users import User
from infrastructure.eventstore import ledger_env, open_view
from infrastructure.memory_cache import MemoryPrincipalCache, MemoryRateLimiter
from infrastructure.passwords import Argon2Hasher
from infrastructure.settings import Settings
from infrastructure.tokens import JwtTokens, jwt_secret
from projections.base import SqlProjection
from projections.catalog import PROJECTIONS
from projections.runner import Follower, ProjectionRunner
from projections.vector_index import FaissFollower
from projections.vectors import VectorsProjection

log = logging.getLogger("ledgerllm")

# Events after which a cached principal may be stale (changed elsewhere, e.g. by the CLI).
STALE_PRINCIPAL_TOPICS = frozenset(
    get_topic(c)
    for c in (ApiKey.Revoked, ApiKey.Expired, User.Suspended, User.Deleted, User.RoleChanged, User.Renamed)
)


@dataclass
class Runtime:
    settings: Settings
    ctx: Context
    limiter: RateLimiter
    follower: Follower | None = None
    closers: list[Any] = field(default_factory=list)
    parsers: Any = None  # the ParserPool: worker processes, stopped on close

    def close(self) -> None:
        if self.follower:
            self.follower.stop()
        if self.parsers:
            self.parsers.close()
        index = self.ctx.content.index if self.ctx.content else None
        if isinstance(index, FaissFollower):
            index.save()
        for runner in self.ctx.runners:
            runner.view.datastore.close()
        self.ctx.ledger.close()


def open_runtime(settings: Settings, *, follow: bool = False, observe: Any = None,
                 observed_topics: frozenset[str] = frozenset()) -> Runtime:
    """Open the store, the views and the adapters; install the owner on first start.

    `follow=True` (the server) starts a thread that keeps the views caught up with events
    written by other processes and drops cached principals those events made stale.

    `settings.read_only` (e.g. a replay made by `ledgerllm replay`): the views catch up with
    what is stored now and stay there; nothing is installed, followed or shared through Redis,
    and every save raises `ReadOnly` before it writes."""
    ledger = Ledger(env=ledger_env(settings))
    if settings.read_only:
        ledger.read_only = ledger.recorder.max_notification_id() or 0
    shared = settings.redis_url is not None and not settings.read_only
    accounts = ProjectionRunner(ledger, make_projection(settings, "accounts"))
    api_keys = ProjectionRunner(ledger, make_projection(settings, "api_keys"))
    if shared:
        from infrastructure.redis_cache import RedisPrincipalCache, RedisRateLimiter

        cache: Any = RedisPrincipalCache(settings.redis_url)
        limiter: Any = RedisRateLimiter(settings.redis_url)
    else:
        cache, limiter = MemoryPrincipalCache(), MemoryRateLimiter()
    ctx = Context(
        ledger=ledger, accounts=accounts, api_keys=api_keys, hasher=Argon2Hasher(), cache=cache,
        tokens=JwtTokens(jwt_secret(settings), settings.jwt_expiry_seconds),
        owner_username=settings.owner_username, simple_sso_enabled=settings.simple_sso_enabled,
    )
    parsers = _open_content(settings, ctx)
    _open_chat(settings, ctx)
    _open_audit(settings, ctx)
    if not settings.read_only:
        install(ctx, settings.auth_token)
    for runner in ctx.runners:
        runner.catch_up()
    runtime = Runtime(settings, ctx, limiter, parsers=parsers)
    if shared:
        runtime.closers += [cache, limiter]
    if follow and not settings.read_only:
        runtime.follower = Follower(
            ledger, ctx.runners, settings.projection_poll_seconds, STALE_PRINCIPAL_TOPICS,
            lambda events: ctx.cache.drop(hashes_affected_by(ctx, events)),
            also=[ctx.content.index.sync], on_topics=observe, observed_topics=observed_topics,
        )
        runtime.follower.start()
        parsers.warm()
    return runtime


def _open_content(settings: Settings, ctx: Context) -> Any:
    """Workspaces, documents and vectors: blobs, parsers (sandboxed worker processes, returned
    for the runtime to close), the link fetcher, the tokenizer, the embedding model (loaded on
    first use) and this process's faiss indexes."""
    from functools import partial

    from infrastructure import parsers
    from infrastructure.blobs import BlobStore
    from infrastructure.faiss_index import WorkspaceIndexes
    from infrastructure.fetch import fetch_link
    from infrastructure.parse_pool import ParserPool
    from infrastructure.secrets import SecretSettings

    blobs = BlobStore(settings.data_dir / "blobs")
    embedder, tokenizer = _shared_models()
    library = ProjectionRunner(ctx.ledger, make_projection(settings, "library"))
    vectors = ProjectionRunner(ctx.ledger, make_projection(settings, "vectors"))
    index = FaissFollower(vectors.view, embedder.model_name, WorkspaceIndexes, settings.data_dir / "faiss")
    ctx.library, ctx.vectors = library, vectors
    pool = ParserPool.from_settings(settings)
    ctx.content = ContentServices(
        blobs=blobs, embedder=embedder, tokenizer=tokenizer, index=index, parse=pool.parse,
        safe_filename=parsers.safe_filename, accepted_file_types=parsers.accepted_file_types,
        fetch=partial(fetch_link, max_bytes=settings.link_max_bytes, timeout=settings.link_timeout,
                      allow_hosts=settings.link_allowlist),
        secrets=SecretSettings(settings.data_dir), max_upload_bytes=settings.upload_max_bytes,
    )
    return pool


# PostgreSQL connections each view keeps open in a server process (more open under load).
_POOL_SIZES = {"audit_log": 1}  # the follower writes it, admins read it rarely


def make_projection(settings: Settings, name: str, view: TrackingRecorder | None = None) -> SqlProjection:
    """The read model `name` on its live view (or on `view`, e.g. a scratch one for a rebuild),
    with the adapters it needs: the vectors projection re-chunks document text from the blob
    store and takes vectors from its embedding cache (the model loads only on a miss)."""
    cls = PROJECTIONS[name]
    if view is None:
        view = open_view(settings, name, cls.views(), pool_size=_POOL_SIZES.get(name, 1))
    if cls is VectorsProjection:
        from infrastructure.blobs import BlobStore

        blobs = BlobStore(settings.data_dir / "blobs")
        embedder, tokenizer = _shared_models()
        return VectorsProjection(view, model=embedder.model_name, text_source=lambda digest: blobs.get(digest).decode(),
                                 chunker=tokenizer.chunk, embed=embedder.embed)
    return cls(view)


@lru_cache(maxsize=1)
def _shared_models() -> tuple[Any, Any]:
    """One embedding model and one tokenizer per process, whatever number of runtimes."""
    from infrastructure.embedder import LocalEmbedder
    from infrastructure.tokenizer import Tokenizer

    return LocalEmbedder(), Tokenizer()


class CompletionsPort:
    """The litellm adapter behind the application's port: its errors become CompletionFailed.
    litellm is imported on the first chat, not at start-up (it takes seconds)."""

    def __init__(self) -> None:
        self._adapter: Any = None

    def _get(self) -> Any:
        if self._adapter is None:
            from infrastructure.completions import LiteLLMCompletions

            self._adapter = LiteLLMCompletions()
        return self._adapter

    def warm(self) -> None:
        """Import litellm now (seconds), so the first chat does not wait for it."""
        from infrastructure.completions import load_litellm

        load_litellm()

    def complete(self, config: Any, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        from infrastructure.completions import CompletionError

        try:
            return self._get().complete(config, messages, **kwargs)
        except CompletionError as e:
            raise CompletionFailed(e.message, e.kind, e.status) from None

    def stream(self, config: Any, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        from infrastructure.completions import CompletionError

        try:
            yield from self._get().stream(config, messages, **kwargs)
        except CompletionError as e:
            raise CompletionFailed(e.message, e.kind, e.status) from None


def _llm_config(**fields: Any) -> Any:
    from infrastructure.completions import LLMConfig

    return LLMConfig(**fields)


def _open_chat(settings: Settings, ctx: Context) -> None:
    ctx.chats = ProjectionRunner(ctx.ledger, make_projection(settings, "chats"))
    ctx.completions = CompletionsPort()
    ctx.completions_config = _llm_config
    ctx.llm_defaults = LLMDefaults(settings.llm_model, settings.llm_api_base, settings.llm_api_key,
                                   settings.llm_context_window, settings.llm_timeout)
    ctx.chat_ids = IdBlocks("chats")


def _open_audit(settings: Settings, ctx: Context) -> None:
    ctx.audit = ProjectionRunner(ctx.ledger, make_projection(settings, "audit_log"))
