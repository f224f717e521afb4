"""The Webhook aggregate: a URL that is sent the events of the store, one POST each, in order.

Its events hold the URL and the event types it wants, never its signing secret (that lives in
the secrets store, see application.webhooks)."""

from __future__ import annotations

import re
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import InvalidInput, WebhookNotFound
from domain.principal import Actor

URL_MAX = 2000
TYPES_MAX = 20
TYPE_MAX = 100
# An event type as `events --type` takes it: `ApiKey.Issued`, or a prefix such as `ApiKey`.
_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_URL = re.compile(r"^https?://[^\s/?#@]+(?::\d{1,5})?(?:[/?#][^\s]*)?$", re.IGNORECASE)


def webhook_uuid(webhook_id: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/webhooks/{webhook_id}")


def check_url(url: str) -> str:
    """An absolute http(s) URL without credentials or whitespace, at most URL_MAX characters."""
    url = url.strip()
    if not url or len(url) > URL_MAX or not _URL.match(url) or not url.isascii() or not url.isprintable():
        raise InvalidInput(f"A webhook URL must be an absolute http:// or https:// URL of at most {URL_MAX} "
                           "ASCII characters, without user name or password.")
    return url


def check_types(types: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The event types a webhook is sent (empty: every event), each a qualified name or a prefix."""
    found = tuple(dict.fromkeys(t.strip() for t in types or ()))
    if len(found) > TYPES_MAX:
        raise InvalidInput(f"A webhook takes at most {TYPES_MAX} event types.")
    bad = [t for t in found if len(t) > TYPE_MAX or not _TYPE.match(t)]
    if bad:
        raise InvalidInput(f"Invalid event types {bad}: use a type like ApiKey.Issued or a prefix like ApiKey.")
    return found


class Webhook(Audited):
    class Added(Audited.Created):
        webhook_id: int
        url: str
        types: tuple[str, ...]

        def apply(self, hook: Webhook) -> None:
            hook.webhook_id = self.webhook_id
            hook.url = self.url
            hook.types = tuple(self.types)
            hook.removed = False

    class Removed(Audited.Event):
        def apply(self, hook: Webhook) -> None:
            hook.removed = True

    class ParkedReplayed(Audited.Event):
        """An operator sent a parked webhook's deliveries again, from `position` on."""

        position: int

        def apply(self, hook: Webhook) -> None:
            pass

    @classmethod
    def add(cls, actor: Actor, webhook_id: int, url: str, types: tuple[str, ...]) -> Webhook:
        return cls._create(cls.Added, id=webhook_uuid(webhook_id), **actor.stamp(), webhook_id=webhook_id,
                           url=check_url(url), types=check_types(types))

    def remove(self, actor: Actor) -> None:
        if self.removed:
            raise WebhookNotFound()
        self._record(self.Removed, actor)

    def replay_parked(self, actor: Actor, position: int) -> None:
        if self.removed:
            raise WebhookNotFound()
        self._record(self.ParkedReplayed, actor, position=position)
