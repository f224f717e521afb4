"""The Litestar app factory. Importing this module does no work; `create_app` does."""

from __future__ import annotations

import gc
import logging

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from eventsourcing.utils import get_topic

from api import metrics
from api.auth import AuthMiddleware
from api.deps import provide_ctx
from api.errors import EXCEPTION_HANDLERS, JsonRequest, document_errors
from api.requestlog import RequestEdge
from api.routes import embed_public, health, keys, public, system, v1
from api.warmup import Warmup, freeze_heap
from api.wiring import open_runtime
from application.ledger import Context, ReadOnly
from application.ports import Clock
from domain.chats import Chat
from infrastructure.settings import Settings

VERSION = "0.1.0"
log = logging.getLogger("ledgerllm")


def create_app(settings: Settings, clock: Clock | None = None) -> Litestar:
    """The app. Each start-up opens its runtime with `app.state.settings` (these settings, unless
    replaced before a later start-up) and `app.state.clock` (`clock`; None: the system clock);
    only the parts named by `app_shape` are built into the routes, so an app may be started again
    with other settings of the same shape."""

    @asynccontextmanager
    async def runtime(app: Litestar) -> AsyncIterator[None]:
        # A server process: its PostgreSQL pool has the server's size, its connections say "serve".
        settings = msgspec.structs.replace(app.state.settings, pg_role="serve")
        app.state.runtime = await anyio.to_thread.run_sync(lambda: open_runtime(
            settings, follow=True, clock=app.state.clock, observe=metrics.observe, observed_topics=frozenset({get_topic(Chat.Recorded)}),
            webhook_outcome=metrics.webhook_outcome))
        metrics.LAG.runtime = app.state.runtime
        read_only = app.state.runtime.ctx.read_only
        log.info("ledgerllm ready: %s store, %s cache%s", "PostgreSQL" if settings.postgres else "SQLite",
                 "Redis" if settings.redis_url and read_only is None else "in-process",
                 "" if read_only is None else f", read-only at position {read_only}")
        ctx = app.state.runtime.ctx
        app.state.warmup = warmup = Warmup()
        if settings.embed_model:  # load the models now, without holding up start-up; not ready until then
            embedder = ctx.content.embedder
            warmup.start("embedder", embedder.warm, lambda: bool(getattr(embedder, "loaded", True)))
            if settings.llm_model:
                warmup.start("completions client", ctx.completions.warm,
                             lambda: bool(getattr(ctx.completions, "loaded", True)))
        freeze_heap()
        try:
            yield
        finally:
            gc.unfreeze()  # what the runtime held can be collected once it is closed
            rt = app.state.runtime
            for closer in rt.closers:
                await closer.aclose()
            if metrics.LAG.runtime is rt:
                metrics.LAG.runtime = None
            await anyio.to_thread.run_sync(rt.close)
            log.info("ledgerllm stopped: store and views closed")

    openapi = OpenAPIConfig(
        title="ledgerllm",
        version=VERSION,
        description="AnythingLLM-compatible developer API, event-sourced: every change records who made it.",
        path="/api/docs",
        render_plugins=[SwaggerRenderPlugin(path="/")],
        components=Components(security_schemes={
            "BearerAuth": SecurityScheme(type="http", scheme="bearer", description="An API key (sk-...)"),
        }),
        security=[{"BearerAuth": []}],
    )
    middleware = [DefineMiddleware(AuthMiddleware, exclude=["^/api/docs", "^/metrics"])]
    if settings.read_only:
        middleware.insert(0, ReadOnlyMiddleware)
    app = Litestar(
        route_handlers=[
            public.PublicController, system.SystemController, keys.SingleUserKeysController, keys.AdminKeysController, v1.v1_router(settings.upload_max_bytes),
            embed_public.EmbedWidgetController, health.HealthController, metrics.Metrics,
        ],
        lifespan=[runtime],
        dependencies={"ctx": Provide(provide_ctx, sync_to_thread=False)},
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi,
        cors_config=CORSConfig(allow_origins=["*"], allow_headers=["*"],
                               expose_headers=["X-Request-Id", *([READ_ONLY_HEADER] if settings.read_only else [])]),
        request_max_body_size=settings.max_body_bytes,
        signature_namespace={"Context": Context},
        request_class=JsonRequest,
        logging_config=None,
        state=State({"settings": settings, "clock": clock}),
    )
    document_errors(app)
    # Litestar's handler is its CORS layer (`cors_config`) around the exception-handling router.
    cors = app.asgi_handler
    inner = getattr(cors, "app", None)
    if inner is None:
        raise RuntimeError("Litestar's ASGI handler is not its CORS middleware: check api/requestlog.RequestEdge")
    app.asgi_handler = RequestEdge(cors, inner, stamp_read_only if settings.read_only else None, metrics.REQUESTS)
    return app


def app_shape(settings: Settings) -> tuple[object, ...]:
    """The settings `create_app` builds into the routes and middleware; the rest is read at start-up."""
    return settings.read_only, settings.upload_max_bytes, settings.max_body_bytes


# read-only mode (`ledgerllm serve --read-only`, READ_ONLY=1) ------------------------------------
READ_ONLY_HEADER = "X-Ledgerllm-Read-Only"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POST routes that only read (checked: they append no event): sign-in issues a token from the
# stored password hash, search and embeddings compute vectors (a search caches its query's
# vector in the vectors read model, never in the store), the chat log is a listing. Chats are
# not here: they would call the model and record the exchange.
READS_BY_POST = frozenset({"requestToken", "v1VectorSearch", "v1OpenAiEmbeddings", "v1AdminWorkspaceChats"})


class ReadOnlyMiddleware:
    """Refuses every change with 403 `{"error": ...}` before authentication or any other work.
    The save guard in `Ledger.save` is the backstop for routes that write on a GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            handler = scope.get("route_handler")
            if getattr(handler, "operation_id", None) not in READS_BY_POST:
                raise ReadOnly(scope["app"].state.runtime.ctx.read_only)
        await self.app(scope, receive, send)


def stamp_read_only(scope: Scope) -> tuple[bytes, bytes] | None:
    """Every response of a read-only server names the position it shows."""
    runtime = getattr(scope["app"].state, "runtime", None)
    return None if runtime is None else (READ_ONLY_HEADER.lower().encode(), str(runtime.ctx.read_only).encode())
