"""Webhook deliveries: each event a webhook wants, POSTed alone, in position order.

Body: the event as `GET /api/v1/admin/events` renders it (credential hashes left out).
Headers: `X-Ledgerllm-Delivery: <position>` (the idempotency key), `X-Ledgerllm-Event: <type>`,
`X-Ledgerllm-Webhook: <id>` and `X-Ledgerllm-Signature: sha256=<hex HMAC-SHA256 of the body
with the webhook's secret>`. A 2xx answer takes the event; anything else (a redirect too, and
no answer within WEBHOOK_TIMEOUT) is a failure: the same event is tried again after
WEBHOOK_BACKOFF_BASE_SECONDS * 2^(failures-1) (at most WEBHOOK_BACKOFF_MAX_SECONDS), and the
WEBHOOK_MAX_ATTEMPTS-th failure in a row parks the webhook until `ledgerllm webhooks
replay-parked`. Later events wait behind a failing one, so order is kept.

Every delivery passes `upload-link`'s SSRF rules again (resolved, checked, and connected to by
the checked address; loopback and private hosts only if LINK_ALLOWLIST names them)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

import msgspec

from application.event_feed import EventRecord, type_matches
from application.rows import DeliveryState, WebhookRow
from application.views import AccountsView, EventFeed
from application.webhooks import secret_key
from application.ports import SecretStore
from infrastructure.settings import Settings
from infrastructure.webhook_store import DeliveryStore

log = logging.getLogger("ledgerllm.webhooks")
USER_AGENT = "ledgerllm-webhooks/0.1"
READ_BATCH = 200  # positions read from the store at a time
ROUND_MAX = 500  # events one webhook is sent before the others get their turn
_encode = msgspec.json.Encoder().encode


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookTargetCheck:
    """The WebhookTargets port: `upload-link`'s SSRF rules, checked when a webhook is added."""

    def __init__(self, allow_hosts: frozenset[str], timeout: float = 10.0) -> None:
        self.allow_hosts, self.timeout = allow_hosts, timeout

    def refusal(self, url: str) -> str | None:
        import httpx  # httpx and the pinned transport load on first use (~0.4 s): CLI commands stay quick

        from infrastructure.fetch import checked_addresses

        try:
            checked_addresses(httpx.URL(url), self.allow_hosts, time.monotonic() + self.timeout)
        except (httpx.InvalidURL, ValueError) as e:  # FetchRefused and FetchFailed are ValueErrors
            return str(e).replace("refused to fetch", "refused webhook URL") or f"{url!r} is not a valid URL"
        return None


def post_event(url: str, secret: str, webhook_id: int, record: EventRecord, allow_hosts: frozenset[str],
               timeout: float) -> str | None:
    """POST one event; None if the receiver took it (2xx), else why not."""
    import httpx

    from infrastructure.fetch import FetchFailed, FetchRefused, checked_addresses
    from infrastructure.pinned_http import pinned_transport

    body = _encode(record)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Ledgerllm-Delivery": str(record.position), "X-Ledgerllm-Event": record.type,
               "X-Ledgerllm-Webhook": str(webhook_id), "X-Ledgerllm-Signature": signature(secret, body)}
    deadline = time.monotonic() + timeout
    try:
        target = httpx.URL(url)
        host, addresses = checked_addresses(target, allow_hosts, deadline)
        with httpx.Client(transport=pinned_transport(host, addresses, deadline), trust_env=False,
                          follow_redirects=False) as client:
            with client.stream("POST", target, content=body, headers=headers,
                               timeout=httpx.Timeout(max(0.1, deadline - time.monotonic()))) as response:
                status = response.status_code
    except (FetchRefused, FetchFailed) as e:
        return str(e)
    except httpx.TimeoutException:
        return f"no answer within {timeout:g} s"
    except (httpx.HTTPError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return None if 200 <= status < 300 else f"HTTP {status}"


class WebhookDeliverer:
    """A thread that delivers every webhook's events while this process holds its lease.

    `on_outcome(kind)` is told of each "delivered", "failed" and "parked" (the metrics)."""

    def __init__(self, settings: Settings, accounts: AccountsView, feed: EventFeed, secrets: SecretStore,
                 store: DeliveryStore, on_outcome: Callable[[str], None] = lambda kind: None) -> None:
        self.settings, self.accounts, self.feed, self.secrets, self.store = settings, accounts, feed, secrets, store
        self.on_outcome = on_outcome
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = settings.webhook_timeout + 30
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing: set[int] = set()  # webhooks whose secret this machine lacks (logged once)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout + 5)
        try:
            self.store.release(self.owner)
        except Exception:  # noqa: BLE001 - the leases expire by themselves
            log.warning("could not release webhook leases; they expire in %.0f s", self.lease_seconds)

    def _run(self) -> None:
        logged = 0.0  # when an outage was last logged: once a minute, not every tick
        while not self._stop.is_set():
            try:
                self.deliver_once()
            except Exception:  # noqa: BLE001 - a store or view outage: try again next tick
                if time.monotonic() - logged > 60:
                    logged = time.monotonic()
                    log.exception("webhook deliveries failed; retrying every %g s", self.settings.webhook_poll_seconds)
            self._stop.wait(self.settings.webhook_poll_seconds)

    def deliver_once(self) -> None:
        """One round: each webhook with events due is sent them, if this process gets its lease.
        Checkpoints are read first, so an idle or parked webhook costs no write."""
        if self.accounts.stalled():
            return  # the webhook list may be out of date
        hooks = self.accounts.webhooks()
        if not hooks:
            return
        head, now = self.feed.head(), time.time()
        states = self.store.states()
        for hook in hooks:
            if self._stop.is_set():
                return
            known = states.get(hook.id)
            if (hook.start if known is None else known.position) >= head or (
                    known is not None and (known.parked or known.next_attempt_at > now)):
                continue
            secret = self.secrets.get(secret_key(hook.id))
            if secret is None:
                if hook.id not in self._missing:
                    self._missing.add(hook.id)
                    log.warning("webhook %d: its secret is not in this machine's secrets store; "
                                "another machine delivers it", hook.id)
                continue
            state = self.store.lease(hook.id, hook.start, self.owner, time.time(), self.lease_seconds)
            if state is not None and not state.parked and state.next_attempt_at <= time.time():
                self._deliver(hook, secret, state, head)

    def _deliver(self, hook: WebhookRow, secret: str, state: DeliveryState, head: int) -> None:
        cursor, sent = state.position, 0

        def wanted(topic: str) -> bool:
            qualname = topic.partition(":")[2] or topic
            return not hook.types or any(type_matches(qualname, t) for t in hook.types)

        while cursor < head and sent < ROUND_MAX and not self._stop.is_set():
            if sent and self._removed(hook.id):
                return  # removed during this round: not one delivery more
            records, last = self.feed.read(cursor, min(READ_BATCH, head - cursor), wanted)
            if last <= cursor:
                return
            for record in records:
                position = record.position or cursor
                error = post_event(hook.url, secret, hook.id, record.without_credentials(),
                                   self.settings.link_allowlist, self.settings.webhook_timeout)
                if error is not None:
                    self._failed(hook, position, error)
                    return
                if not self.store.advance(hook.id, self.owner, position, 1, time.time() + self.lease_seconds):
                    return  # the lease went to another process, which resends from its checkpoint
                self.on_outcome("delivered")
                cursor, sent = position, sent + 1
            if last > cursor and not self.store.advance(hook.id, self.owner, last, 0, time.time() + self.lease_seconds):
                return
            cursor = last

    def _removed(self, webhook_id: int) -> bool:
        row = self.accounts.webhook(webhook_id)
        return row is None or row.removed_at is not None

    def _failed(self, hook: WebhookRow, position: int, error: str) -> None:
        s = self.settings
        parked = self.store.fail(hook.id, self.owner, error, time.time(), s.webhook_backoff_base_seconds,
                                 s.webhook_backoff_max_seconds, s.webhook_max_attempts)
        self.on_outcome("failed")
        if parked:
            self.on_outcome("parked")
            log.warning("webhook %d parked at position %d after %d failures: %s", hook.id, position,
                        s.webhook_max_attempts, error)
        else:
            log.info("webhook %d: delivery of position %d failed: %s", hook.id, position, error)
