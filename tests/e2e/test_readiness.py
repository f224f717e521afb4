"""`GET /api/health/ready` means the server can serve: a fresh server says it is loading its
models until they are loaded (then 200), and a read model behind the store by more than
READY_MAX_LAG_EVENTS events or READY_MAX_LAG_SECONDS seconds takes it out (503, naming it)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PROVIDER_KEY
from tests.support.app import client_for
from tests.support.process import ServerProcess, get, wait_until

LOADING = {"embedder loading", "completions client loading"}


def test_a_fresh_server_is_not_ready_until_its_models_are_loaded(sqlite_backend, tmp_path, llm):
    server = ServerProcess(sqlite_backend, tmp_path / "server.log", env={
        "LLM_MODEL": "openai/test-model", "LLM_API_BASE": llm.base_url, "LLM_API_KEY": PROVIDER_KEY})
    try:
        server.wait_ready()  # answers /api/ping: the models load in the background meanwhile
        status, body, _ = get(server.url + "/api/health/ready")
        first = json.loads(body)
        # litellm takes seconds to import: the first answer still waits for it
        assert status == 503 and first["ready"] is False, first
        assert "completions client loading" in first["reasons"] and set(first["reasons"]) <= LOADING, first
        seen: list[list[str]] = [first["reasons"]]

        def ready() -> bool:
            status, body, _ = get(server.url + "/api/health/ready")
            answer = json.loads(body)
            seen.append(answer["reasons"])
            assert set(answer["reasons"]) <= LOADING, answer  # nothing else is wrong meanwhile
            return status == 200 and answer["ready"] is True and answer["reasons"] == []

        wait_until(ready, "the server to become ready", timeout=180, every=0.05)
        assert seen[-1] == [] and any("embedder loading" in r or "completions client loading" in r for r in seen)
    finally:
        assert server.stop() in (0, -15)
    log = (tmp_path / "server.log").read_text()
    assert "embedder loaded" in log and "completions client loaded" in log and "Traceback" not in log


def test_a_read_model_too_many_events_behind_is_not_ready(backend):
    # The follower polls once an hour here: events written by another process (the CLI) stay
    # unapplied by this one (start-up itself catches every read model up).
    with client_for(backend, embed_model=False, projection_poll_seconds=3600, ready_max_lag_events=0) as client:
        assert client.get("/api/health/ready").status_code == 200
        backend.cli("api-keys", "create", "--name", "elsewhere")
        answer = client.get("/api/health/ready")
        body = answer.json()
        assert answer.status_code == 503 and body["ready"] is False, body
        # The audit log shows every event; the CLI caught up only the views it read back.
        behind = {p["projection"]: p["behind"] for p in body["projections"]}
        assert behind["audit_log"] >= 1, body
        assert f"read model audit_log is {behind['audit_log']} events behind (READY_MAX_LAG_EVENTS=0)" in body["reasons"]
    with client_for(backend, embed_model=False, ready_max_lag_events=0) as client:  # caught up at start
        assert client.get("/api/health/ready").status_code == 200


def test_a_read_model_missing_an_old_event_is_not_ready(backend):
    with client_for(backend, embed_model=False, projection_poll_seconds=3600, ready_max_lag_seconds=1.0) as client:
        assert client.get("/api/health/ready").status_code == 200
        backend.cli("api-keys", "create", "--name", "elsewhere")  # within READY_MAX_LAG_EVENTS (1000)

        def too_old() -> dict | None:
            answer = client.get("/api/health/ready")
            return answer.json() if answer.status_code == 503 else None

        body = wait_until(too_old, "the unapplied event to be older than READY_MAX_LAG_SECONDS", timeout=60)
        [reason] = [r for r in body["reasons"] if r.startswith("read model audit_log is ")]
        assert "events behind, the oldest stored" in reason and reason.endswith("(READY_MAX_LAG_SECONDS=1)"), body
        assert body["degraded"] == []


@pytest.mark.parametrize("env, name", [({"READY_MAX_LAG_EVENTS": "-1"}, "READY_MAX_LAG_EVENTS"),
                                       ({"READY_MAX_LAG_SECONDS": "0"}, "READY_MAX_LAG_SECONDS"),
                                       ({"READY_MAX_LAG_SECONDS": "soon"}, "READY_MAX_LAG_SECONDS")])
def test_bad_readiness_settings_are_refused_with_their_name(env, name):
    from infrastructure.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=name):
        load_settings(env)
