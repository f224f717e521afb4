"""While `accounts` or `api_keys` is stalled, its rows may miss a revocation or a suspension
stored since the stall. Authentication then reads the ApiKey and User aggregates in the store,
so such a change takes effect at once, and the keys nothing refused keep working."""

from __future__ import annotations

from domain.apikeys import ApiKey
from domain.principal import Actor, Role
from domain.users import User
from tests.e2e.test_stalled_projections import TOO_BIG, store_of
from tests.support.app import Backend, bearer, client_for, multi_user_keys


def _poison_api_keys(backend: Backend) -> int:
    """An `ApiKey.Issued` the api_keys read model cannot store (its id overflows BIGINT)."""
    key = ApiKey.issue(Actor(1, None, "poison"), TOO_BIG, 1, "0" * 64, "sk-poison")
    with store_of(backend) as ledger:
        return ledger.save(key)[-1].notification.id


def _poison_accounts(backend: Backend) -> int:
    """A `User.Registered` the accounts read model cannot store (its id overflows BIGINT)."""
    user = User.register(Actor(1, None, "poison"), TOO_BIG, "poison-user", Role.DEFAULT, None)
    with store_of(backend) as ledger:
        return ledger.save(user)[-1].notification.id


def _suspend_behind_the_apps_back(backend: Backend, user_id: int) -> None:
    from domain.users import user_uuid

    with store_of(backend) as ledger:
        user = ledger.repository.get(user_uuid(user_id))
        user.suspend(Actor(1, None, "elsewhere"))
        ledger.save(user)


def _works(client, key: str) -> int:
    return client.get("/api/v1/auth", headers=bearer(key)).status_code


def _key_id(client, admin: str, user_id: int) -> int:
    keys = client.get("/api/admin/api-keys", headers=bearer(admin)).json()["apiKeys"]
    return next(k["id"] for k in keys if k["userId"] == user_id)


def test_with_api_keys_stalled_a_suspension_and_a_revocation_take_effect(backend):
    with client_for(backend, embed_model=False) as client:
        keys = multi_user_keys(client)
        manager_key_id = _key_id(client, keys["admin"], keys["manager_id"])
    poison = _poison_api_keys(backend)

    with client_for(backend, embed_model=False) as client:
        runtime = client.app.state.runtime
        assert runtime.runner("api_keys").stall.position == poison
        assert [_works(client, keys[r]) for r in ("admin", "manager", "default")] == [200, 200, 200]
        # the stall is shown with its event
        rows = {p["projection"]: p for p in
                client.get("/api/v1/admin/projections", headers=bearer(keys["admin"])).json()["projections"]}
        stall = rows["api_keys"]["stall"]
        assert rows["api_keys"]["stalled"] and stall["position"] == poison and stall["eventType"] == "ApiKey.Issued"
        assert "Overflow" in stall["error"] or "out of range" in stall["error"]
        assert rows["accounts"]["stalled"] is False and rows["accounts"]["stall"] is None
        # a suspension over HTTP (accounts applies it; the stalled key listing never sees it)
        suspended = client.post(f"/api/v1/admin/users/{keys['default_id']}", json={"suspended": True},
                                headers=bearer(keys["admin"]))
        assert suspended.status_code == 200, suspended.text
        assert _works(client, keys["default"]) == 403
        # a revocation through the CLI, stored though api_keys cannot apply it
        done = backend.cli("api-keys", "revoke", str(manager_key_id))
        assert "revoked" in done.stderr
        assert _works(client, keys["manager"]) == 403
        assert _works(client, keys["admin"]) == 200
        assert runtime.runner("api_keys").stall.position == poison  # still stalled: the store decided


def test_with_accounts_stalled_a_suspension_stored_since_takes_effect(backend):
    with client_for(backend, embed_model=False) as client:
        keys = multi_user_keys(client)
        session = client.post("/api/request-token", json={"username": "default-user",
                                                           "password": "default-password"}).json()["token"]
        manager_key_id = _key_id(client, keys["admin"], keys["manager_id"])
    poison = _poison_accounts(backend)

    with client_for(backend, embed_model=False) as client:
        assert client.app.state.runtime.runner("accounts").stall.position == poison
        assert [_works(client, keys[r]) for r in ("admin", "manager", "default")] == [200, 200, 200]
        # the session gets through authentication; the route itself reads the stalled model: 503
        assert client.get("/api/system/check-token", headers=bearer(session)).status_code == 503
        # stored by another process (the accounts read model here cannot apply it)
        _suspend_behind_the_apps_back(backend, keys["default_id"])
        assert _works(client, keys["default"]) == 403
        assert client.get("/api/admin/api-keys", headers=bearer(session)).status_code == 401
        # a revocation through the CLI (the key listing applies it)
        backend.cli("api-keys", "revoke", str(manager_key_id))
        assert _works(client, keys["manager"]) == 403
        assert _works(client, keys["admin"]) == 200
