"""A real `ledgerllm serve` keeps answering /api/ping while bombs are refused, and replaces a
parse worker its CPU cap killed. (Latency percentiles are measured by bench/parse_bombs.py.)"""

from __future__ import annotations

import threading

import httpx

from harness.bombs import docx_bomb
from tests.support.process import get, running_server
from tests.unit.test_parsers import make_docx

PING_TIMEOUT = 10.0  # seconds per ping, generous for a busy machine; get() fails past it


def _upload_while_pinging(url: str, key: str, filename: str, data: bytes) -> tuple[httpx.Response, list[int]]:
    result: dict[str, httpx.Response] = {}

    def upload() -> None:
        result["response"] = httpx.post(url + "/api/v1/document/upload", headers={"Authorization": f"Bearer {key}"},
                                        files={"file": (filename, data)}, timeout=120)

    thread = threading.Thread(target=upload)
    thread.start()
    pings = []
    while thread.is_alive():  # at least once: the upload cannot be over before the first ping
        pings.append(get(url + "/api/ping")[0])
    thread.join()
    return result["response"], pings


def test_server_answers_pings_during_bombs_and_replaces_a_worker_killed_by_its_cap(sqlite_backend, tmp_path):
    env = {"PARSE_WORKERS": "1", "PARSE_CPU_SECONDS": "2"}
    with running_server(sqlite_backend, tmp_path / "server.log", env=env) as server:
        key = sqlite_backend.cli("api-keys", "create").stdout.strip()

        response, pings = _upload_while_pinging(server.url, key, "bomb.docx", docx_bomb(240 << 20))
        assert response.status_code == 422 and "PARSE_MAX_UNPACKED_BYTES" in response.json()["error"]
        assert pings and set(pings) == {200}

        # 16 MiB of tiny paragraphs passes the byte budget and needs far more than 2 s of CPU
        response, pings = _upload_while_pinging(server.url, key, "slow.docx", docx_bomb(16 << 20))
        assert response.status_code == 422, response.text
        assert "needs more than 2 s of CPU time" in response.json()["error"]
        assert "PARSE_CPU_SECONDS" in response.json()["error"]
        assert pings and set(pings) == {200}

        response, _ = _upload_while_pinging(server.url, key, "normal.docx", make_docx())
        assert response.status_code == 200, response.text  # the one worker was replaced
        assert response.json()["documents"][0]["title"] == "Quarterly Report"
    assert "Traceback" not in (tmp_path / "server.log").read_text()
