"""Webhooks: add, remove and list them; send a parked one's deliveries again.

A webhook is an aggregate (`Webhook.Added`/`Removed`, with the actor), so the list is a read
model (the `webhooks` table of `accounts`). Its signing secret is made here, shown once in the
answer and kept in the secrets store under `webhook:<id>` (the deliverer needs the secret itself
to sign, so it cannot be hashed), never in an event or a read model. Deliveries themselves are
made by `infrastructure.webhooks`, which keeps its checkpoints beside the store."""

from __future__ import annotations

import secrets

import msgspec

from application.access import check_admin
from application.ids import take_id
from application.ledger import Command, Context
from application.ports import WebhookServices
from application.rows import DeliveryState, WebhookRow
from domain.errors import InvalidInput, Unavailable, WebhookNotFound
from domain.principal import Principal
from domain.webhooks import Webhook, check_types, check_url, webhook_uuid

SECRET_PREFIX = "whsec_"


def secret_key(webhook_id: int) -> str:
    """The webhook's entry in the secrets store."""
    return f"webhook:{webhook_id}"


class WebhookListing(msgspec.Struct, frozen=True):
    webhook: WebhookRow
    state: DeliveryState | None  # None: nothing delivered or tried yet


class NewWebhook(msgspec.Struct, frozen=True):
    webhook: WebhookRow
    secret: str  # shown once, in this answer only
    position: int | None


class AddWebhook(Command, frozen=True, kw_only=True):
    url: str
    types: tuple[str, ...] = ()


def _services(ctx: Context) -> WebhookServices:
    if ctx.webhooks is None:
        raise Unavailable("Webhooks are not available in this process.")
    return ctx.webhooks


def add_webhook(ctx: Context, cmd: AddWebhook) -> NewWebhook:
    """Checked before anything is stored: the URL's form, its host against the SSRF rules
    (resolved now; checked again before every delivery), and the types."""
    check_admin(cmd.principal)
    url, types = check_url(cmd.url), check_types(cmd.types)
    refusal = _services(ctx).targets.refusal(url)
    if refusal is not None:
        raise InvalidInput(refusal)
    actor = cmd.actor()
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    webhook_id = take_id(ctx, "webhooks", actor)
    ctx.content.secrets.update({secret_key(webhook_id): secret})  # before the event: delivery needs it at once
    try:
        position = ctx.save(Webhook.add(actor, webhook_id, url, types), project=[ctx.accounts])
    except BaseException:
        ctx.content.secrets.discard([secret_key(webhook_id)])
        raise
    row = ctx.accounts.webhook(webhook_id)
    assert row is not None
    return NewWebhook(row, secret, position)


class RemoveWebhook(Command, frozen=True, kw_only=True):
    webhook_id: int


def remove_webhook(ctx: Context, cmd: RemoveWebhook) -> None:
    """Deliveries stop at once; the secret is forgotten."""
    check_admin(cmd.principal)

    def attempt() -> None:
        hook = ctx.ledger.find(webhook_uuid(cmd.webhook_id), Webhook)
        if hook is None:
            raise WebhookNotFound()
        hook.remove(cmd.actor())
        ctx.save(hook, project=[ctx.accounts])

    ctx.retrying(attempt)
    ctx.content.secrets.discard([secret_key(cmd.webhook_id)])


class ReplayParked(Command, frozen=True, kw_only=True):
    webhook_id: int | None = None  # None: every parked webhook


def replay_parked(ctx: Context, cmd: ReplayParked) -> dict[int, int]:
    """Parked webhooks (or the one named) are sent again from the event they stopped at, with
    the usual retries; each replay is recorded (`Webhook.ParkedReplayed`). Returns webhook id ->
    the position its deliveries resume from."""
    check_admin(cmd.principal)
    services = _services(ctx)
    if cmd.webhook_id is not None:
        row = ctx.accounts.webhook(cmd.webhook_id)
        if row is None or row.removed_at is not None:
            raise WebhookNotFound()
        wanted = [cmd.webhook_id]
    else:
        wanted = [w.id for w in ctx.accounts.webhooks()]
    resumed: dict[int, int] = {}
    for webhook_id in wanted:
        position = services.deliveries.unpark(webhook_id)
        if position is None:
            continue
        resumed[webhook_id] = position

        def attempt(webhook_id: int = webhook_id, position: int = position) -> None:
            hook = ctx.ledger.load(webhook_uuid(webhook_id), Webhook)
            hook.replay_parked(cmd.actor(), position)
            ctx.save(hook)

        ctx.retrying(attempt)
    return resumed


def list_webhooks(ctx: Context, principal: Principal, include_removed: bool = False) -> list[WebhookListing]:
    check_admin(principal)
    states = ctx.webhooks.deliveries.states() if ctx.webhooks is not None else {}
    return [WebhookListing(w, states.get(w.id)) for w in ctx.accounts.webhooks(include_removed)]
