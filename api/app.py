"""The Litestar app factory. Importing this module does no work; `create_app` does."""

from __future__ import annotations

import logging
import threading

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from eventsourcing.utils import get_topic

from api import metrics
from api.auth import AuthMiddleware
from api.deps import provide_ctx
from api.errors import EXCEPTION_HANDLERS
from api.requestlog import RequestIdMiddleware, stamp_response
from api.routes import embed_public, keys, public, system, v1
from api.wiring import open_runtime
from application.ledger import Context
from domain.chats import Chat
from infrastructure.settings import Settings

VERSION = "0.1.0"
log = logging.getLogger("ledgerllm")


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def runtime(app: Litestar) -> AsyncIterator[None]:
        app.state.runtime = await anyio.to_thread.run_sync(lambda: open_runtime(
            settings, follow=True, observe=metrics.observe, observed_topics=frozenset({get_topic(Chat.Recorded)})))
        metrics.LAG.runtime = app.state.runtime
        log.info("ledgerllm ready: %s store, %s cache", "PostgreSQL" if settings.postgres else "SQLite",
                 "Redis" if settings.redis_url else "in-process")
        ctx = app.state.runtime.ctx
        if settings.embed_model:  # load the models now, without holding up start-up
            threading.Thread(target=ctx.content.embedder.warm, daemon=True).start()
            if settings.llm_model:
                threading.Thread(target=ctx.completions.warm, daemon=True).start()
        try:
            yield
        finally:
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
    return Litestar(
        route_handlers=[
            public.PublicController, system.SystemController, keys.SingleUserKeysController, keys.AdminKeysController, v1.v1_router(settings.upload_max_bytes),
            embed_public.EmbedWidgetController, metrics.Metrics,
        ],
        lifespan=[runtime],
        dependencies={"ctx": Provide(provide_ctx, sync_to_thread=False)},
        middleware=[RequestIdMiddleware, metrics.metrics_config().middleware,
                    DefineMiddleware(AuthMiddleware, exclude=["^/api/docs", "^/metrics"])],
        before_send=[stamp_response],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi,
        cors_config=CORSConfig(allow_origins=["*"], allow_headers=["*"], expose_headers=["X-Request-Id"]),
        request_max_body_size=settings.max_body_bytes,
        signature_namespace={"Context": Context},
        logging_config=None,
    )
