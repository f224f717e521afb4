"""`GET /api/health/ready` means the process can serve now: a real `ledgerllm serve` answers
503 with a reason while its embedding model and completions client load, then 200; a read
model behind by more than READY_MAX_LAG_SECONDS is a reason too."""

from __future__ import annotations

import json
import time

from tests.conftest import PROVIDER_KEY
from tests.support.process import ServerProcess, get


def _answers_until_ready(server: ServerProcess, timeout: float = 300) -> list[tuple[int, dict]]:
    """Every readiness answer from the first the server gives to the first 200."""
    answers: list[tuple[int, dict]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.log_path.read_text()
        try:
            status, body, _ = get(server.url + "/api/health/ready")
        except OSError:  # not listening yet
            time.sleep(0.02)
            continue
        answers.append((status, json.loads(body)))
        if status == 200:
            return answers
        time.sleep(0.02)
    raise AssertionError(f"never ready: {answers[-3:]}\n{server.log_path.read_text()}")


def test_ready_is_503_naming_what_loads_until_the_models_are_warm(sqlite_backend, llm, tmp_path):
    env = {"LLM_MODEL": "openai/test-model", "LLM_API_BASE": llm.base_url, "LLM_API_KEY": PROVIDER_KEY}
    server = ServerProcess(sqlite_backend, tmp_path / "server.log", env=env)
    try:
        answers = _answers_until_ready(server)
        first_status, first = answers[0]
        assert first_status == 503 and first["ready"] is False, answers[0]
        loading = {r for _, body in answers[:-1] for r in body["reasons"]}
        assert loading <= {"embedding model is loading", "completions client is loading"}, loading
        assert "completions client is loading" in loading  # importing litellm takes seconds
        assert get(server.url + "/api/ping")[0] == 200  # alive throughout: only readiness waits
        status, body, _ = get(server.url + "/api/health/ready")
        ready = json.loads(body)
        assert status == 200 and ready["reasons"] == [] and ready["ready"] is True
        assert all(p["behind"] == 0 and p["behindSeconds"] == 0 for p in ready["projections"])
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_a_read_model_behind_for_longer_than_the_threshold_is_not_ready(sqlite_backend, tmp_path):
    """A server that applies no event (a long poll interval) falls behind a CLI that writes
    (the CLI brings only the key listing up to date): in events its other read models are within
    READY_MAX_LAG_EVENTS, in seconds they pass READY_MAX_LAG_SECONDS."""
    env = {"PROJECTION_POLL_SECONDS": "3600", "READY_MAX_LAG_SECONDS": "0.5", "READY_MAX_LAG_EVENTS": "1000"}
    server = ServerProcess(sqlite_backend, tmp_path / "server.log", env=env)
    try:
        _answers_until_ready(server)
        sqlite_backend.cli("api-keys", "create", "--name", "written-elsewhere")
        deadline = time.monotonic() + 120
        while True:
            status, body, _ = get(server.url + "/api/health/ready")
            ready = json.loads(body)
            if status == 503:
                break
            assert time.monotonic() < deadline, ready
            time.sleep(0.1)
        assert ready["reasons"] and all(r.startswith("read model ") and r.endswith(" s behind")
                                        for r in ready["reasons"]), ready
        lagging = [p for p in ready["projections"] if p["behindSeconds"] > 0.5]
        assert lagging and all(1 <= p["behind"] <= 1000 for p in lagging)
    finally:
        server.stop()
