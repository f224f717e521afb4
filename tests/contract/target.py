"""The server the contract tests run against: a real `ledgerllm serve` process on one backend,
in multi-user mode with an admin, a manager and a default user (keys made by the app), and
seeded objects (workspace, document, thread, embed and its chat session, invite, a spare user
and key, a generated file) whose ids the generated requests can hit.

Generated requests may delete or break any of these (revoke a key, suspend a user, delete the
workspace): `Target.ensure()` checks them before each operation and makes new ones as needed."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import psycopg

from tests.support.app import Backend
from tests.support.process import running_server

ROLES = ("admin", "manager", "default")
PASSWORD = "contract-password-1"
SETUP_TIMEOUT = 300  # the first chat and upload load litellm and the embedding model: slow on a busy machine


class EventHead:
    """The store's last position, read with plain SQL on a connection kept open."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        if backend.database_url:
            self._pg = psycopg.connect(backend.database_url, autocommit=True)
        else:
            self._lite = sqlite3.connect(backend.data_dir / "events.db", check_same_thread=False)

    def __call__(self) -> int:
        if self.backend.database_url:
            return self._pg.execute("SELECT coalesce(max(notification_id), 0) FROM ledger_events").fetchone()[0]
        return self._lite.execute("SELECT coalesce(max(rowid), 0) FROM stored_events").fetchone()[0]

    def close(self) -> None:
        (self._pg if self.backend.database_url else self._lite).close()


@dataclass
class Target:
    backend: Backend
    url: str
    http: httpx.Client
    keys: dict[str, str] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=dict)  # path parameter name -> real values
    head: EventHead | None = None

    def call(self, method: str, path: str, key: str | None = None, headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.keys['admin']}", **(headers or {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> dict[str, Any]:
        response = self.call(method, path, key, **kwargs)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response.json()

    # --- the people -----------------------------------------------------------------------
    def ensure(self) -> None:
        """Make sure every role's key works and every seeded object exists (again)."""
        if not self._works(self.keys.get("admin")):
            self.keys["admin"] = self.backend.cli("api-keys", "create", "--name", "contract-admin").stdout.strip()
        for role in ("manager", "default"):
            if not self._works(self.keys.get(role)):
                self.keys[role], user_id = self._new_user(role)
                self.paths[f"{role}_id"] = [str(user_id)]
        self._ensure_objects()

    def _works(self, key: str | None) -> bool:
        return key is not None and self.call("GET", "/api/v1/auth", key).status_code == 200

    def _new_user(self, role: str) -> tuple[str, int]:
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        user = self.ok("POST", "/api/v1/admin/users/new", json={"username": name, "password": PASSWORD, "role": role})
        user_id = user["user"]["id"]
        key = self.ok("POST", "/api/admin/generate-api-key", json={"userId": user_id})["apiKey"]["secret"]
        return key, user_id

    # --- the objects ----------------------------------------------------------------------
    def _ensure_objects(self) -> None:
        slug = self._ensure_workspace()
        self.paths["slug"] = [slug]
        self.paths["thread_slug"] = [self._ensure_thread(slug)]
        embed_uuid, session = self._ensure_embed(slug)
        self.paths.update(embed_uuid=[embed_uuid], embed_id=[embed_uuid], session_uuid=[session], session_id=[session])
        self.paths["doc_name"], self.paths["folder_name"] = self._ensure_document(slug)
        self._ensure_invite()
        self._ensure_spare_user_and_key()
        workspace_id = self.ok("GET", f"/api/v1/workspace/{slug}")["workspace"][0]["id"]
        self.paths["workspace"] = [str(workspace_id), slug]
        self.paths["filename"] = [self._ensure_generated_file()]

    def _ensure_invite(self) -> None:
        pending = [i for i in self.ok("GET", "/api/v1/admin/invites")["invites"]
                   if str(i["id"]) in self.paths.get("invite_id", []) and i["status"] == "pending"]
        if not pending:
            invite = self.ok("POST", "/api/v1/admin/invite/new")["invite"]
            self.paths.update(invite_id=[str(invite["id"])], code=[invite["code"]])

    def _ensure_spare_user_and_key(self) -> None:
        """A user and a key that generated requests may change, suspend, revoke or delete."""
        users = {str(u["id"]): u for u in self.ok("GET", "/api/v1/admin/users")["users"]}
        spare = users.get((self.paths.get("user_id") or [""])[0])
        if spare is None or spare["suspended"]:
            made = self.ok("POST", "/api/v1/admin/users/new",
                           json={"username": f"spare-{uuid.uuid4().hex[:8]}", "password": PASSWORD})
            self.paths["user_id"] = [str(made["user"]["id"])]
        keys = {str(k["id"]): k for k in self.ok("GET", "/api/admin/api-keys")["apiKeys"]}
        key = keys.get((self.paths.get("key_id") or [""])[0])
        if key is None or not key["active"]:
            made = self.ok("POST", "/api/admin/generate-api-key", json={"userId": int(self.paths["user_id"][0])})
            self.paths["key_id"] = [str(made["apiKey"]["id"])]

    def _ensure_workspace(self) -> str:
        found = self.ok("GET", "/api/v1/workspace/contract-space")["workspace"]
        if found:
            return found[0]["slug"]
        return self.ok("POST", "/api/v1/workspace/new", json={"name": "Contract Space"})["workspace"]["slug"]

    def _ensure_thread(self, slug: str) -> str:
        threads = self.ok("GET", f"/api/v1/workspace/{slug}/threads")["threads"]
        if threads:
            return threads[0]["slug"]
        return self.ok("POST", f"/api/v1/workspace/{slug}/thread/new", json={"name": "contract"})["thread"]["slug"]

    def _ensure_embed(self, slug: str) -> tuple[str, str]:
        embeds = [e for e in self.ok("GET", "/api/v1/embed")["embeds"] if e["workspace"]["slug"] == slug]
        known = self.paths.get("embed_uuid", [None])[0]
        if any(e["uuid"] == known and e["enabled"] for e in embeds):
            return known, self.paths["session_id"][0]
        if embeds and embeds[0]["enabled"]:
            embed_uuid = embeds[0]["uuid"]
        else:
            embed_uuid = self.ok("POST", "/api/v1/embed/new", json={"workspace_slug": slug, "chat_mode": "chat"})[
                "embed"]["uuid"]
        session = str(uuid.uuid4())
        chat = self.http.post(f"/api/embed/{embed_uuid}/stream-chat", json={"sessionId": session, "message": "hi"})
        assert chat.status_code == 200, chat.text
        return embed_uuid, session

    def _ensure_document(self, slug: str) -> tuple[list[str], list[str]]:
        listed = self.ok("GET", "/api/v1/documents")["localFiles"]["items"]
        docs = [d for folder in listed for d in folder["items"]]
        if not docs:
            stored = self.ok("POST", "/api/v1/document/raw-text", json={
                "textContent": "Ledgers keep every change. " * 20, "metadata": {"title": "contract-note"},
                "addToWorkspaces": slug})
            docs = stored["documents"]
        folders = sorted({d["location"].split("/")[0] for d in docs})
        return [docs[0]["name"]], folders

    def _ensure_generated_file(self) -> str:
        folder = self.backend.data_dir / "generated"
        folder.mkdir(exist_ok=True)
        name = "txt-0b9d3c55-6d8e-4a61-9f0c-2f0c2d8d6a11.txt"
        (folder / name).write_text("a file an agent made\n")
        return name


@contextmanager
def running_target(backend: Backend, log_path: Path, llm_env: dict[str, str]) -> Iterator[Target]:
    """Start `ledgerllm serve` on `backend`, make the three roles and seed it."""
    admin = backend.cli("api-keys", "create", "--name", "contract-admin").stdout.strip()
    with running_server(backend, log_path, env=llm_env) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        target = Target(backend, server.url, http, keys={"admin": admin})
        enabled = target.ok("POST", "/api/system/enable-multi-user",
                            json={"username": "boss", "password": "boss-password-1"})
        assert enabled == {"success": True, "error": None}
        target.ensure()
        target.head = EventHead(backend)
        try:
            yield target
        finally:
            target.head.close()
