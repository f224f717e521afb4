"""The `ledgerllm` command, run as a subprocess against real stores."""

from __future__ import annotations

import json

from tests.support.app import bearer, client_for


def test_api_keys_create_prints_only_the_secret(backend):
    result = backend.cli("api-keys", "create", "--name", "ci", "--scope", "read", "--scope", "chat",
                         "--expires-in", "30d", "--rate-limit", "60")
    secret = result.stdout.strip()
    assert result.stdout.count("\n") == 1 and secret.startswith("sk-") and len(secret) == 31
    assert "shown once" in result.stderr and secret not in result.stderr
    listed = [json.loads(line) for line in backend.cli("api-keys", "list", "--json").stdout.splitlines()]
    assert len(listed) == 1
    row = listed[0]
    assert row["name"] == "ci" and row["scopes"] == "read chat" and row["user"] == "admin"
    assert secret.startswith(row["prefix"]) and secret not in json.dumps(row) and row["expires_at"]
    with client_for(backend) as client:
        assert client.get("/api/v1/auth", headers=bearer(secret)).status_code == 200


def test_revoke_and_list_all(backend):
    secret = backend.cli("api-keys", "create").stdout.strip()
    assert "revoked" in backend.cli("api-keys", "revoke", "1").stderr
    assert "already revoked" in backend.cli("api-keys", "revoke", "1").stderr
    assert backend.cli("api-keys", "list", "--json").stdout == ""
    rows = [json.loads(line) for line in backend.cli("api-keys", "list", "--all", "--json").stdout.splitlines()]
    assert rows[0]["active"] is False and rows[0]["revoked_at"]
    with client_for(backend) as client:
        assert client.get("/api/v1/auth", headers=bearer(secret)).status_code == 403


def test_users_create_needs_multi_user_mode_then_takes_stdin_or_generates(backend):
    refused = backend.cli("users", "create", "bob", check=False)
    assert refused.returncode != 0 and "enable-multi-user" in refused.stderr
    generated = backend.cli("users", "enable-multi-user", "boss").stdout.strip()
    assert len(generated) >= 16
    backend.cli("users", "create", "bob", "--role", "manager", input="bob-password\n")
    printed = backend.cli("users", "create", "carol").stdout.strip()
    users = {u["username"]: u for u in map(json.loads, backend.cli("users", "list", "--json").stdout.splitlines())}
    assert set(users) == {"boss", "bob", "carol"} and users["bob"]["role"] == "manager"
    with client_for(backend) as client:
        for name, password in (("boss", generated), ("bob", "bob-password"), ("carol", printed)):
            login = client.post("/api/request-token", json={"username": name, "password": password}).json()
            assert login["valid"] is True, name


def test_errors_tell_the_user_what_to_do(backend):
    backend.cli("users", "enable-multi-user", "boss")
    for args, expected in (
        (["api-keys", "create", "--user", "ghost"], "no user named 'ghost'"),
        (["api-keys", "create", "--expires-in", "soon"], "Invalid duration"),
        (["api-keys", "create", "--expires-in", "999999w"], "at most 100 years"),
        (["api-keys", "revoke", "42"], "API key not found"),
        (["users", "create", "Bad Name"], "Username must be"),
    ):
        result = backend.cli(*args, check=False)
        assert result.returncode != 0 and expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    dup = backend.cli("users", "create", "boss", input="whatever-pass\n", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr


def test_bad_settings_are_reported_not_crashed(tmp_path):
    import subprocess

    from tests.support.app import LEDGERLLM, Backend

    env = Backend("sqlite", tmp_path / "data").env(DATABASE_URL="mysql://nope", PORT="x")
    result = subprocess.run([LEDGERLLM, "api-keys", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "PORT" in result.stderr and "Traceback" not in result.stderr


def test_owner_password_set_from_the_cli_enables_single_user_login(backend):
    backend.cli("users", "set-password", "admin", input="owner-password-7\n")
    with client_for(backend) as client:
        login = client.post("/api/request-token", json={"password": "owner-password-7"})
        assert login.status_code == 200 and login.json()["valid"] is True
