"""Webhook use cases on the in-memory store: adding records the URL and types with the actor,
never the secret (that goes to the secrets store); bad or private URLs store nothing; only
admins manage webhooks; removing forgets the secret."""

from __future__ import annotations

import pytest

from application.webhooks import (
    AddWebhook, RemoveWebhook, ReplayParked, add_webhook, list_webhooks, remove_webhook, replay_parked, secret_key,
)
from domain.errors import InvalidInput, PermissionDenied, WebhookNotFound
from domain.webhooks import Webhook
from tests.support.memory import add_user, head, memory_runtime, new_events, owner, own_key, stamps


def test_adding_records_url_types_and_actor_but_never_the_secret(tmp_path):
    with memory_runtime(tmp_path, link_allowlist=frozenset({"127.0.0.1"})) as rt:
        admin = own_key(rt, owner(rt))
        before = head(rt)
        new = add_webhook(rt.ctx, AddWebhook(principal=admin, correlation_id="c1", url="http://127.0.0.1:9/h",
                                             types=("ApiKey", "User.Registered", "ApiKey")))
        added = [e for e in new_events(rt, before) if isinstance(e, Webhook.Event)]
        assert [type(e).__qualname__ for e in added] == ["Webhook.Added"]
        assert added[0].url == "http://127.0.0.1:9/h" and added[0].types == ("ApiKey", "User.Registered")
        assert stamps(added) == {(admin.user_id, admin.api_key_id, "c1")}
        assert new.secret.startswith("whsec_") and new.secret not in repr(vars(added[0]))
        assert rt.ctx.content.secrets.get(secret_key(new.webhook.id)) == new.secret
        assert new.webhook.start == new.position  # it is sent the events after its own
        assert [w.webhook.id for w in list_webhooks(rt.ctx, admin)] == [new.webhook.id]

        remove_webhook(rt.ctx, RemoveWebhook(principal=admin, correlation_id="c2", webhook_id=new.webhook.id))
        assert list_webhooks(rt.ctx, admin) == []
        assert rt.ctx.content.secrets.get(secret_key(new.webhook.id)) is None
        with pytest.raises(WebhookNotFound):
            remove_webhook(rt.ctx, RemoveWebhook(principal=admin, correlation_id="c3", webhook_id=new.webhook.id))
        with pytest.raises(WebhookNotFound):
            replay_parked(rt.ctx, ReplayParked(principal=admin, correlation_id="c4", webhook_id=new.webhook.id))


@pytest.mark.parametrize("url", ["http://10.0.0.7/hook", "http://127.0.0.1/hook", "http://[::1]:80/",
                                 "http://169.254.169.254/latest", "ftp://example.com/", "http://user:pw@example.com/",
                                 "not a url", "http://exa mple.com/"])
def test_a_refused_url_stores_nothing(tmp_path, url):
    with memory_runtime(tmp_path) as rt:
        admin = owner(rt)
        before = head(rt)
        with pytest.raises(InvalidInput):
            add_webhook(rt.ctx, AddWebhook(principal=admin, correlation_id="c1", url=url))
        assert [e for e in new_events(rt, before) if isinstance(e, Webhook.Event)] == []


def test_bad_types_are_refused_and_only_admins_manage_webhooks(tmp_path):
    with memory_runtime(tmp_path, link_allowlist=frozenset({"127.0.0.1"})) as rt:
        with pytest.raises(InvalidInput):
            add_webhook(rt.ctx, AddWebhook(principal=owner(rt), correlation_id="c1", url="http://127.0.0.1/",
                                           types=("Api Key",)))
        dana = add_user(rt, "dana")
        before = head(rt)
        with pytest.raises(PermissionDenied):
            add_webhook(rt.ctx, AddWebhook(principal=dana, correlation_id="c2", url="http://127.0.0.1/"))
        with pytest.raises(PermissionDenied):
            list_webhooks(rt.ctx, dana)
        assert new_events(rt, before) == []
