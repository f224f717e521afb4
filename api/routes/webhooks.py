"""`/api/v1/admin/webhooks`: add, list and remove webhooks, and send parked ones again. Admins
only, with the `admin` scope, as the event feed. Delivery format: see infrastructure.webhooks
and the README's Webhooks section."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter
from msgspec import Meta

from api.auth import requires_role, requires_scope
from api.errors import SuccessError, raises
from api.presenters import parse_id, request_id
from api.schema import IdPath, PublicId
from application import webhooks
from application.ledger import Context
from domain.errors import WebhookNotFound
from domain.principal import Role
from domain.webhooks import TYPE_MAX, TYPES_MAX, URL_MAX

COMMON = {"sync_to_thread": True}
EventType = Annotated[str, Meta(min_length=1, max_length=TYPE_MAX, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")]


class NewWebhookBody(msgspec.Struct, frozen=True):
    """`url`: http(s), on a public address unless LINK_ALLOWLIST names its host; `types`: event
    types (`ApiKey.Issued`) or prefixes (`ApiKey`) to send, none or empty: every event."""

    url: Annotated[str, Meta(min_length=1, max_length=URL_MAX)]
    types: Annotated[list[EventType], Meta(max_length=TYPES_MAX)] | None = None


class ReplayBody(msgspec.Struct, frozen=True):
    """`id`: one webhook; none: every parked one."""

    id: PublicId | None = None


class DeliveryOut(msgspec.Struct):
    position: int  # the last event it took or passed over
    delivered: int
    failures: int  # in a row
    parked: bool
    nextAttemptAt: float | None  # epoch seconds, while failing
    lastError: str | None


class WebhookOut(msgspec.Struct):
    id: int
    url: str
    types: list[str]
    createdBy: int
    createdByKey: int | None
    createdAt: str
    startPosition: int  # it is sent the events after this one
    removedAt: str | None
    delivery: DeliveryOut | None


class WebhookList(msgspec.Struct):
    webhooks: list[WebhookOut]


class NewWebhookOut(msgspec.Struct):
    """`secret` signs every delivery (`X-Ledgerllm-Signature`); it is shown here only."""

    webhook: WebhookOut
    secret: str
    error: None = None


class RemovedOut(msgspec.Struct):
    success: bool
    error: None = None


class ReplayedOut(msgspec.Struct):
    """Webhook id (as text) -> the position its deliveries resume from."""

    replayed: dict[str, int]


def webhook_out(listing: webhooks.WebhookListing) -> WebhookOut:
    w, s = listing.webhook, listing.state
    delivery = None if s is None else DeliveryOut(s.position, s.delivered, s.failures, s.parked,
                                                  s.next_attempt_at or None, s.last_error)
    return WebhookOut(w.id, w.url, list(w.types), w.created_by, w.created_by_key, w.created_at, w.start,
                      w.removed_at, delivery)


class WebhooksController(Controller):
    """Failures answer `{success: false, error}`, as the other admin routes."""

    path = "/admin/webhooks"
    tags = ["Admin"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]
    opt = {"error_shape": SuccessError}

    @get("/", operation_id="v1AdminListWebhooks", **COMMON)
    def list_webhooks(
        self, ctx: Context, request: Request,
        include_removed: Annotated[bool, Parameter(query="all", description="include removed webhooks")] = False,
    ) -> WebhookList:
        """Webhooks with where their deliveries stand; never their secrets."""
        return WebhookList([webhook_out(w) for w in webhooks.list_webhooks(ctx, request.user, include_removed)])

    @post("/", operation_id="v1AdminAddWebhook", status_code=200, **COMMON)
    def add_webhook(self, ctx: Context, request: Request, data: NewWebhookBody) -> NewWebhookOut:
        """It is sent every event stored from now on that matches `types`. The secret is in this answer only."""
        new = webhooks.add_webhook(ctx, webhooks.AddWebhook(
            principal=request.user, correlation_id=request_id(request), url=data.url, types=tuple(data.types or ())))
        return NewWebhookOut(webhook_out(webhooks.WebhookListing(new.webhook, None)), new.secret)

    @delete("/{webhook_id:str}", operation_id="v1AdminRemoveWebhook", status_code=200, opt=raises(WebhookNotFound),
            **COMMON)
    def remove_webhook(self, ctx: Context, request: Request, webhook_id: IdPath) -> RemovedOut:
        webhooks.remove_webhook(ctx, webhooks.RemoveWebhook(
            principal=request.user, correlation_id=request_id(request), webhook_id=parse_id(webhook_id, "webhook")))
        return RemovedOut(True)

    @post("/replay-parked", operation_id="v1AdminReplayParkedWebhooks", status_code=200,
          opt=raises(WebhookNotFound), **COMMON)
    def replay_parked(self, ctx: Context, request: Request, data: ReplayBody | None = None) -> ReplayedOut:
        """Parked webhooks are sent again from the event they stopped at."""
        resumed = webhooks.replay_parked(ctx, webhooks.ReplayParked(
            principal=request.user, correlation_id=request_id(request), webhook_id=(data or ReplayBody()).id))
        return ReplayedOut({str(k): v for k, v in resumed.items()})
