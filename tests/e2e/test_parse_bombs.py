"""Decompression bombs over HTTP: each is refused with a 4xx JSON error in seconds, the
server's memory hardly moves (the bomb goes off, if anywhere, in a parse worker), and nothing
is stored. A default user's chat attachment gets the same treatment.

Before parsing was sandboxed and counted, the 240 MiB DOCX was stored after 355-590 s and
3.7-5.9 GB of server memory; the lying-header one cost the server +435 MB, the chat one +1 GB.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import pytest

from harness.bombs import docx_bomb, pdf_flate_bomb, pdf_page_flood
from tests.support.app import Backend, bearer, client_for, multi_user_keys, owner_key
from tests.unit.test_parsers import make_docx

DEADLINE = 30.0  # seconds; generous for a busy machine: the point is seconds, not minutes
# What the server may grow by while refusing a bomb: it holds the upload (< 1 MiB) a few times
# over (request body, multipart parts, the frame sent to the worker) and the refusal; the rest
# is allocator noise. The bombs themselves would need 0.4 to 6 GB.
MEMORY_BOUND_MB = 64

BOMBS = {
    "docx-240MiB": ("bomb.docx", lambda: docx_bomb(240 << 20), "PARSE_MAX_UNPACKED_BYTES"),
    "docx-lying-header": ("liar.docx", lambda: docx_bomb(240 << 20, lie=True), "PARSE_MAX_UNPACKED_BYTES"),
    "pdf-flate-64MiB": ("flate.pdf", lambda: pdf_flate_bomb(64 << 20), "PARSE_MAX_UNPACKED_BYTES"),
    "pdf-50k-pages": ("pages.pdf", lambda: pdf_page_flood(50_000), "PARSE_MAX_PAGES"),
}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {name: make() for name, (_, make, _) in BOMBS.items()}


class RssPeak:
    """The largest resident set of this process (the app runs in it) while the block runs."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.baseline = self.peak = self._rss_mb()

    @staticmethod
    def _rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss_mb())

    def __enter__(self) -> RssPeak:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak - self.baseline


def _refused_in_seconds(backend: Backend, send, expected_status: int):
    """Send (after a warm-up done by the caller); the answer, checked for time, memory and store."""
    events = len(backend.raw_events())
    with RssPeak() as rss:
        started = time.monotonic()
        response = send()
        elapsed = time.monotonic() - started
    assert response.status_code == expected_status, response.text
    assert elapsed < DEADLINE, f"refused after {elapsed:.1f} s"
    assert rss.growth_mb < MEMORY_BOUND_MB, f"the server grew by {rss.growth_mb:.0f} MB"
    assert len(backend.raw_events()) == events, "a refused file stored something"
    return response.json()


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_upload_is_refused_in_seconds_and_stores_nothing(backend, bombs, name):
    filename, _, setting = BOMBS[name]
    with client_for(backend, embed_model=False) as client:
        key = bearer(owner_key(client))
        warm = client.post("/api/v1/document/upload", headers=key, files={"file": ("warm.docx", make_docx())})
        assert warm.status_code == 200, warm.text  # first-use imports are not the bomb's doing
        body = _refused_in_seconds(backend, lambda: client.post(
            "/api/v1/document/upload", headers=key, files={"file": (filename, bombs[name])}), 422)
        assert body["success"] is False and body["documents"] == []
        assert f"the limit is {setting}=" in body["error"] and f"can raise {setting}" in body["error"]
        assert filename in body["error"]
        listing = client.get("/api/v1/documents", headers=key).json()["localFiles"]["items"]
        names = [d["name"] for folder in listing for d in folder["items"]]
        assert len(names) == 1 and names[0].startswith("warm.docx")


def test_default_users_chat_attachment_bomb_is_refused_before_the_model(backend, llm, llm_settings):
    """The 208 KB-class DOCX (59 MiB of XML) as a chat attachment from a default user's key."""
    bomb = docx_bomb(59 << 20)
    assert 180 << 10 < len(bomb) < 240 << 10
    with client_for(backend, embed_model=False, **llm_settings) as client:
        keys = multi_user_keys(client)
        admin, alice = bearer(keys["admin"]), bearer(keys["default"])
        assert client.post("/api/v1/workspace/new", headers=admin, json={"name": "shared"}).status_code == 200
        client.post("/api/v1/admin/workspaces/shared/manage-users", headers=admin,
                    json={"userIds": [keys["default_id"]]}).raise_for_status()

        def chat(data: bytes):
            attachment = {"name": "notes.docx", "mime": "application/anythingllm-document",
                          "contentString": base64.b64encode(data).decode()}
            return client.post("/api/v1/workspace/shared/chat", headers=alice,
                               json={"message": "summarise the attachment", "attachments": [attachment]})

        llm.reply("A normal document.")
        assert chat(make_docx()).status_code == 200  # warm-up, and normal attachments still work
        llm.reset()
        body = _refused_in_seconds(backend, lambda: chat(bomb), 400)
        assert body["type"] == "abort" and body["textResponse"] is None
        assert "notes.docx" in body["error"] and "the limit is PARSE_MAX_UNPACKED_BYTES=" in body["error"]
        assert llm.chat_requests == []
