"""Every event the API or the CLI can store is one every read model can apply (issue 11.2).

Hypothesis drives random sequences of commands, with boundary values (huge and negative
integers, unicode, NUL characters, empty strings, values of the wrong type), through the HTTP
API of the real app and through `ledgerllm` subprocesses, on SQLite and on PostgreSQL with
Redis. No command may answer 5xx or crash the CLI; after each sequence every read model is at
the head of the store, none is stalled, and `ledgerllm verify` finds each equal to its
rebuild. Figures are printed at the end of the run (see tests/e2e/conftest.py).

Bounded for CI (fixed sequences, `SEQUENCE_EXAMPLES`/`SEQUENCE_STEPS` small); run more locally:
`SEQUENCE_EXAMPLES=20 SEQUENCE_SEED=7 pytest tests/e2e/test_command_sequences.py`."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from tests.conftest import PROVIDER_KEY
from tests.support import sequences as seq
from tests.support.app import Backend, bearer, client_for, owner_key
from tests.support.sequences import floats, ints, loose, names, passwords, picks, texts

ROLES = st.sampled_from(["admin", "manager", "default", "", "root", "ADMIN"])
SCOPES = st.lists(st.sampled_from(["read", "write", "chat", "admin", "", "sudo"]), max_size=4)
ENV_KEYS = st.sampled_from(["LLMProvider", "OpenAiKey", "VectorDB", "EmbeddingEngine", "OpenAiModelPref",
                            "GenericOpenAiKey", "TextGenWebUIBasePath", "NoSuchSetting", ""])
PREFERENCES = st.sampled_from(["support_email", "footer_data", "custom_app_name", "meta_page_title",
                               "meta_page_favicon", "text_splitter_chunk_size", "default_system_prompt", "unknown"])
WORKSPACE_FIELDS = {"similarityThreshold": floats, "openAiTemp": floats, "openAiHistory": ints, "topN": ints,
                    "openAiPrompt": texts, "queryRefusalResponse": texts, "name": names,
                    "chatMode": st.sampled_from(["chat", "query", "automatic", "", "agent"]),
                    "vectorSearchMode": st.sampled_from(["default", "rerank", "x"]), "chatModel": texts,
                    "pfpFilename": texts}
EMBED_FIELDS = {"chat_mode": st.sampled_from(["chat", "query", "other"]), "max_chats_per_day": ints,
                "max_chats_per_session": ints, "message_limit": ints, "enabled": loose,
                "allowlist_domains": st.one_of(texts, st.lists(texts, max_size=3)), "allow_model_override": loose,
                "allow_prompt_override": loose, "allow_temperature_override": loose}


def _some(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A body holding some of `fields`, each with a boundary value, or a value of any type."""
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, v, v, loose) for k, v in fields.items()})


class CommandSequences(RuleBasedStateMachine):
    """One sequence = one fresh store; the commands act on what the sequence made so far."""

    new_backend: Callable[[], Backend]
    overrides: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()
        self.backend = type(self).new_backend()
        self.figures = seq.figures_for(self.backend.name)
        self._client_cm = client_for(self.backend, embed_model=False, **self.overrides)
        self.client = self._client_cm.__enter__()
        self.admin = owner_key(self.client)
        self.multi_user = False
        self.users = 1  # public ids are 1..users (some deleted)
        self.keys: list[str] = [self.admin]
        self.key_ids = 1
        self.workspaces: list[str] = []
        self.documents: list[str] = []
        self.threads: list[tuple[str, str]] = []
        self.embeds: list[str] = []

    # --- the two doors ----------------------------------------------------------------------
    def http(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        started = time.monotonic()
        response = self.client.request(method, path, json=body, headers=bearer(key or self.admin))
        self.figures.commands += 1
        self.figures.http += 1
        self.figures.statuses[response.status_code] = self.figures.statuses.get(response.status_code, 0) + 1
        seq.log(f"{time.monotonic() - started:.2f}s {method} {path} {body!r} -> {response.status_code} "
                f"{response.text[:300]}")
        assert response.status_code < 500, f"{method} {path} {body!r} -> {response.status_code} {response.text}"
        return response

    def cli(self, *args: str, stdin: str = "") -> str | None:
        """`ledgerllm ARGS`: its stdout, or None when it refused (exit 1 or 2). An argument
        cannot hold NUL (the OS forbids it), so those are dropped; stdin may hold them."""
        args = tuple(a.replace("\x00", "") for a in args)
        result = self.backend.cli(*args, input=stdin, check=False)
        seq.log(f"ledgerllm {args!r} -> {result.returncode} {result.stderr[-300:]}")
        self.figures.commands += 1
        self.figures.cli += 1
        assert result.returncode in (0, 1, 2) and "Traceback" not in result.stderr, \
            f"ledgerllm {args!r} -> {result.returncode}\n{result.stderr}"
        return result.stdout if result.returncode == 0 else None

    def key_as(self, index: int) -> str:
        return seq.pick(self.keys, index, "sk-not-a-key")

    @initialize(name=seq.plain, text=st.text(min_size=1, max_size=200))
    def a_workspace_with_a_document(self, name: str, text: str) -> None:
        """Something to act on from the first step: a workspace holding one embedded document."""
        self.create_workspace(name, {}, 0)
        self.upload_raw_text(text, name, 0, True)

    # --- accounts ---------------------------------------------------------------------------
    @precondition(lambda self: not self.multi_user)
    @rule(username=names, password=passwords, via_cli=st.booleans())
    def enable_multi_user(self, username: str, password: str, via_cli: bool) -> None:
        if via_cli:
            done = self.cli("users", "enable-multi-user", username, stdin=password + "\n") is not None
        else:
            done = self.http("POST", "/api/system/enable-multi-user",
                             {"username": username, "password": password}).status_code == 200
        deadline = time.monotonic() + 30  # the CLI wrote behind the server's back: wait until it applied
        while done and not self.multi_user:
            self.multi_user = self.client.get("/api/system/multi-user-mode").json()["multiUserMode"] is True
            assert self.multi_user or time.monotonic() < deadline, "multi-user mode enabled but never applied"
            time.sleep(0.05)

    @precondition(lambda self: self.multi_user)
    @rule(username=names, password=passwords, role=ROLES, limit=st.one_of(st.none(), ints, loose), bio=texts,
          via_cli=st.booleans())
    def create_user(self, username: str, password: str, role: str, limit: Any, bio: str, via_cli: bool) -> None:
        if via_cli and role in ("admin", "manager", "default"):
            self.cli("users", "create", username, "--role", role, stdin=password + "\n")
        else:
            self.http("POST", "/api/v1/admin/users/new", {"username": username, "password": password, "role": role,
                                                          "dailyMessageLimit": limit, "bio": bio})
        self.users += 1

    @precondition(lambda self: self.multi_user)
    @rule(user=picks, body=_some({"username": names, "password": passwords, "role": ROLES, "bio": texts,
                                  "suspended": st.sampled_from([0, 1, True, False, 2, "1"]),
                                  "dailyMessageLimit": st.one_of(st.none(), ints), "pfpFilename": texts}))
    def update_user(self, user: int, body: dict[str, Any]) -> None:
        self.http("POST", f"/api/v1/admin/users/{user % (self.users + 2)}", body)

    @precondition(lambda self: self.multi_user)
    @rule(user=picks, suspended=st.booleans())
    def suspend_user(self, user: int, suspended: bool) -> None:
        self.http("POST", f"/api/v1/admin/users/{1 + user % (self.users + 1)}", {"suspended": int(suspended)})

    @precondition(lambda self: self.multi_user)
    @rule(user=picks)
    def delete_user(self, user: int) -> None:
        self.http("DELETE", f"/api/v1/admin/users/{2 + user % (self.users + 1)}")

    @rule(user=picks, reason=st.one_of(texts, loose))
    def erase_user(self, user: int, reason: Any) -> None:
        """Crypto-shredding: the user's content reads as erased; read models overwrite it."""
        self.http("POST", f"/api/v1/admin/users/{1 + user % (self.users + 2)}/erase", {"reason": reason})

    @precondition(lambda self: self.multi_user)
    @rule(user=picks, password=passwords, sessions=st.booleans())
    def cli_user_sessions_or_password(self, user: int, password: str, sessions: bool) -> None:
        listed = self.http("GET", "/api/v1/admin/users").json().get("users", [])
        name = seq.pick([u["username"] for u in listed], user, "nobody-here")
        if sessions:
            self.cli("users", "revoke-sessions", name)
        else:
            self.cli("users", "set-password", name, stdin=password + "\n")

    # --- API keys -----------------------------------------------------------------------------
    @rule(name=texts, scopes=st.one_of(st.none(), SCOPES), expires=st.sampled_from([None, "30d", "1h", "0d", "-1d",
                                                                                    "99999999d", "x"]),
          rate=st.one_of(st.none(), ints), user=st.one_of(st.none(), picks), via_cli=st.booleans())
    def issue_key(self, name: str, scopes: list[str] | None, expires: str | None, rate: int | None,
                  user: int | None, via_cli: bool) -> None:
        if via_cli:
            args = ["api-keys", "create", "--name", name]
            args += [a for s in scopes or [] if s in ("read", "write", "chat", "admin") for a in ("--scope", s)]
            if expires:
                args += ["--expires-in", expires]
            if rate is not None and abs(rate) < 10**6:
                args += ["--rate-limit", str(rate)]
            secret = (self.cli(*args) or "").strip()
        else:
            body = {"name": name, "scopes": scopes, "expiresIn": expires, "rateLimit": rate}
            if user is not None:
                body["userId"] = user % (self.users + 2)
            door = "/api/admin" if self.multi_user else "/api/system"
            secret = (self.http("POST", f"{door}/generate-api-key", body).json().get("apiKey") or {}).get("secret", "")
        self.key_ids += 1
        if secret.startswith("sk-"):
            self.keys.append(secret)

    @rule(key=picks, how=st.sampled_from(["revoke", "delete", "cli"]))
    def revoke_key(self, key: int, how: str) -> None:
        key_id = 2 + key % self.key_ids  # never the owner's key this sequence acts with
        if how == "cli":
            self.cli("api-keys", "revoke", str(key_id))
        elif self.multi_user:
            self.http("DELETE", f"/api/admin/{'delete-api-key' if how == 'delete' else 'api-key'}/{key_id}")
        else:
            self.http("DELETE", f"/api/system/api-key/{key_id}")

    # --- workspaces ---------------------------------------------------------------------------
    @rule(name=names, body=_some(WORKSPACE_FIELDS), as_key=picks)
    def create_workspace(self, name: str, body: dict[str, Any], as_key: int) -> None:
        response = self.http("POST", "/api/v1/workspace/new", {**body, "name": name}, key=self.key_as(as_key))
        workspace = response.json().get("workspace") if response.status_code == 200 else None
        if workspace:
            self.workspaces.append(workspace["slug"])

    @rule(ws=picks, body=_some(WORKSPACE_FIELDS))
    def update_workspace(self, ws: int, body: dict[str, Any]) -> None:
        self.http("POST", f"/api/v1/workspace/{seq.pick(self.workspaces, ws, 'no-such-ws')}/update", body)

    @rule(ws=picks)
    def delete_workspace(self, ws: int) -> None:
        self.http("DELETE", f"/api/v1/workspace/{seq.pick(self.workspaces, ws, 'no-such-ws')}")

    @precondition(lambda self: self.multi_user)
    @rule(ws=picks, ids=st.lists(st.one_of(picks, ints), max_size=3), reset=st.booleans())
    def manage_members(self, ws: int, ids: list[int], reset: bool) -> None:
        self.http("POST", f"/api/v1/admin/workspaces/{seq.pick(self.workspaces, ws, 'no-such-ws')}/manage-users",
                  {"userIds": ids, "reset": reset})

    # --- documents ----------------------------------------------------------------------------
    @rule(text=st.one_of(texts, st.text(min_size=1, max_size=400)), title=loose, ws=picks, embed=st.booleans())
    def upload_raw_text(self, text: str, title: Any, ws: int, embed: bool) -> None:
        body: dict[str, Any] = {"textContent": text, "metadata": {"title": title}}
        if embed:
            body["addToWorkspaces"] = seq.pick(self.workspaces, ws, "no-such-ws")
        response = self.http("POST", "/api/v1/document/raw-text", body)
        if response.status_code == 200:
            self.documents += [d["location"] for d in response.json().get("documents") or []]

    @rule(doc=picks, folder=names, name=names, keep=st.sampled_from([True, True, True, False]))
    def move_document(self, doc: int, folder: str, name: str, keep: bool) -> None:
        source = seq.pick(self.documents, doc, "custom-documents/none.json")
        # mostly the same file name in another folder (as upstream requires), sometimes a new one
        target = f"{folder}/{source.rsplit('/', 1)[-1] if keep else name + '.json'}"
        response = self.http("POST", "/api/v1/document/move-files", {"files": [{"from": source, "to": target}]})
        if response.status_code == 200 and "not moved" not in response.text and source in self.documents:
            self.documents[self.documents.index(source)] = target

    @rule(folder=names)
    def create_folder(self, folder: str) -> None:
        self.http("POST", "/api/v1/document/create-folder", {"name": folder})

    @rule(ws=picks, adds=st.lists(picks, max_size=2), deletes=st.lists(picks, max_size=2))
    def embed_documents(self, ws: int, adds: list[int], deletes: list[int]) -> None:
        self.http("POST", f"/api/v1/workspace/{seq.pick(self.workspaces, ws, 'no-such-ws')}/update-embeddings",
                  {"adds": [seq.pick(self.documents, a, "x/none.json") for a in adds],
                   "deletes": [seq.pick(self.documents, d, "x/none.json") for d in deletes]})

    @rule(ws=picks, doc=picks, pinned=st.booleans())
    def pin_document(self, ws: int, doc: int, pinned: bool) -> None:
        self.http("POST", f"/api/v1/workspace/{seq.pick(self.workspaces, ws, 'no-such-ws')}/update-pin",
                  {"docPath": seq.pick(self.documents, doc, "x/none.json"), "pinStatus": pinned})

    @rule(doc=picks)
    def remove_document(self, doc: int) -> None:
        self.http("DELETE", "/api/v1/system/remove-documents", {"names": [seq.pick(self.documents, doc, "x/y.json")]})

    # --- threads and chats --------------------------------------------------------------------
    @rule(ws=picks, name=st.one_of(st.none(), texts), slug=st.one_of(st.none(), names), as_key=picks)
    def new_thread(self, ws: int, name: str | None, slug: str | None, as_key: int) -> None:
        workspace = seq.pick(self.workspaces, ws, "no-such-ws")
        response = self.http("POST", f"/api/v1/workspace/{workspace}/thread/new", {"name": name, "slug": slug},
                             key=self.key_as(as_key))
        thread = response.json().get("thread") if response.status_code == 200 else None
        if thread:
            self.threads.append((workspace, thread["slug"]))

    @rule(thread=picks, name=texts, as_key=picks)
    def rename_thread(self, thread: int, name: str, as_key: int) -> None:
        ws, slug = seq.pick(self.threads, thread, ("no-such-ws", "no-such-thread"))
        self.http("POST", f"/api/v1/workspace/{ws}/thread/{slug}/update", {"name": name}, key=self.key_as(as_key))

    @rule(thread=picks, as_key=picks)
    def delete_thread(self, thread: int, as_key: int) -> None:
        ws, slug = seq.pick(self.threads, thread, ("no-such-ws", "no-such-thread"))
        self.http("DELETE", f"/api/v1/workspace/{ws}/thread/{slug}", key=self.key_as(as_key))

    @rule(ws=picks, thread=st.one_of(st.none(), picks), message=texts, mode=st.sampled_from(["chat", "query", None]),
          session=st.one_of(st.none(), texts, ints), reset=st.booleans(), as_key=picks)
    def chat(self, ws: int, thread: int | None, message: str, mode: str | None, session: Any, reset: bool,
             as_key: int) -> None:
        body = {"message": message, "mode": mode, "sessionId": session, "reset": reset}
        if thread is None:
            path = f"/api/v1/workspace/{seq.pick(self.workspaces, ws, 'no-such-ws')}/chat"
        else:
            workspace, slug = seq.pick(self.threads, thread, ("no-such-ws", "no-such-thread"))
            path = f"/api/v1/workspace/{workspace}/thread/{slug}/chat"
        self.http("POST", path, body, key=self.key_as(as_key))

    @rule(ws=picks, thread=st.one_of(st.none(), picks), message=texts, session=st.one_of(st.none(), texts),
          as_key=picks)
    def stream_chat(self, ws: int, thread: int | None, message: str, session: str | None, as_key: int) -> None:
        if thread is None:
            path = f"/api/v1/workspace/{seq.pick(self.workspaces, ws, 'no-such-ws')}/stream-chat"
        else:
            workspace, slug = seq.pick(self.threads, thread, ("no-such-ws", "no-such-thread"))
            path = f"/api/v1/workspace/{workspace}/thread/{slug}/stream-chat"
        self.http("POST", path, {"message": message, "sessionId": session}, key=self.key_as(as_key))

    # --- embeds, settings ---------------------------------------------------------------------
    @rule(ws=picks, body=_some(EMBED_FIELDS))
    def create_embed(self, ws: int, body: dict[str, Any]) -> None:
        response = self.http("POST", "/api/v1/embed/new",
                             {**body, "workspace_slug": seq.pick(self.workspaces, ws, "no-such-ws")})
        embed = response.json().get("embed") if response.status_code == 200 else None
        if embed:
            self.embeds.append(embed["uuid"])

    @rule(embed=picks, body=_some({**EMBED_FIELDS, "workspace_id": ints}))
    def update_embed(self, embed: int, body: dict[str, Any]) -> None:
        self.http("POST", f"/api/v1/embed/{seq.pick(self.embeds, embed, str(uuid.uuid4()))}", body)

    @rule(embed=picks)
    def delete_embed(self, embed: int) -> None:
        self.http("DELETE", f"/api/v1/embed/{seq.pick(self.embeds, embed, str(uuid.uuid4()))}")

    @rule(body=st.dictionaries(ENV_KEYS, loose, max_size=3))
    def update_env(self, body: dict[str, Any]) -> None:
        self.http("POST", "/api/v1/system/update-env", body)

    @precondition(lambda self: self.multi_user)
    @rule(body=st.dictionaries(PREFERENCES, loose, max_size=3))
    def preferences(self, body: dict[str, Any]) -> None:
        self.http("POST", "/api/v1/admin/preferences", body)

    # --- after the sequence -------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            rows = seq.wait_at_head(self.client, self.admin)
            ready = self.client.get("/api/health/ready")
            lag = seq.lag_report(self.client) if any(r["behind"] for r in rows) else ""
        finally:
            self._client_cm.__exit__(None, None, None)
        head = rows[0]["head"]
        self.figures.sequences += 1
        self.figures.events += head
        behind = {r["projection"]: r["behind"] for r in rows if r["behind"]}
        stalled = seq.stalled_projections(self.backend)
        self.figures.stalls += len(stalled)
        differing = seq.verify_mismatches(self.backend)
        self.figures.mismatches += len(differing)
        self.figures.seconds += time.monotonic() - self.started
        assert not stalled, f"stalled read models: {stalled}"
        assert not behind, f"read models behind the head ({head}): {behind}\n{lag}"
        assert ready.status_code == 200, ready.text
        assert not differing, f"read models that differ from their rebuild: {differing}"
        shutil.rmtree(self.backend.data_dir.parent, ignore_errors=True)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_random_command_sequences_leave_every_read_model_at_the_head_and_equal_to_its_rebuild(
        kind: str, request: pytest.FixtureRequest, llm_server: Any) -> None:
    if kind == "postgres":
        pg, redis = request.getfixturevalue("postgres_server"), request.getfixturevalue("redis_server")

    def new_backend() -> Backend:
        root = Path(tempfile.mkdtemp(prefix=f"seq-{kind}-"))
        if kind == "sqlite":
            return Backend("sqlite", root / "data")
        redis.flushall()
        return Backend("postgres", root / "data", pg.create_database(f"seq_{uuid.uuid4().hex[:12]}"), redis.url)

    llm_server.reset()
    machine = type("CommandSequencesOn" + kind.title(), (CommandSequences,), {
        "new_backend": staticmethod(new_backend),
        "overrides": {"llm_model": "openai/test-model", "llm_api_base": llm_server.base_url,
                      "llm_api_key": PROVIDER_KEY, "llm_context_window": 4096, "llm_timeout": 10.0}})
    if seq.SEED is not None:
        machine = seed(int(seq.SEED))(machine)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=seq.EXAMPLES, stateful_step_count=seq.STEPS, deadline=None, database=None,
        derandomize=seq.SEED is None, print_blob=True,
        phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if seq.SHRINK else [])],
        suppress_health_check=list(HealthCheck)))


def test_a_user_id_beyond_64_bits_finds_no_user_instead_of_a_500(backend: Backend) -> None:
    """Found by the sequences: SQLite cannot bind an integer beyond 64 bits, so manage-users
    with `userIds: [-1e30]` answered 500 (and stored nothing)."""
    with client_for(backend, embed_model=False) as client:
        admin = bearer(owner_key(client))
        client.post("/api/system/enable-multi-user", headers=admin, json={"username": "boss", "password": "pw-boss-1"})
        assert client.post("/api/v1/workspace/new", headers=admin, json={"name": "m9"}).status_code == 200
        head = len(backend.raw_events())
        for ids in ([-10**30], [2**63], [2**64, 1089]):
            response = client.post("/api/v1/admin/workspaces/m9/manage-users", headers=admin,
                                   json={"userIds": ids, "reset": True})
            # 400 where the typed body refuses the id (below 1, beyond 2**53 - 1), else upstream's 404
            assert response.status_code in (400, 404), response.text
            assert response.json()["success"] is False and response.json()["error"]
        assert len(backend.raw_events()) == head


def test_an_embed_moved_to_workspace_false_is_refused_not_a_500(backend: Backend) -> None:
    """Found by the sequences on PostgreSQL: `workspace_id: false` passed as the integer 0 in
    Python (`bool` is an `int`), and PostgreSQL refused to compare an integer with a boolean."""
    with client_for(backend, embed_model=False) as client:
        admin = bearer(owner_key(client))
        assert client.post("/api/v1/workspace/new", headers=admin, json={"name": "w"}).status_code == 200
        embed = client.post("/api/v1/embed/new", headers=admin, json={"workspace_slug": "w"}).json()["embed"]
        head = len(backend.raw_events())
        for bad in (False, True, 2**70):
            response = client.post(f"/api/v1/embed/{embed['uuid']}", headers=admin, json={"workspace_id": bad})
            assert response.status_code in (400, 404), response.text  # 400: the typed body refuses it
            assert response.json()["success"] is False and response.json()["error"]
        assert len(backend.raw_events()) == head
