"""Which of our files one request runs through: "create an API key" and "send a chat with an
API key", traced from the route to the stored event and the read model's answer.

Runs the real app in this process (Litestar's TestClient, embedded SQLite under a temp
DATA_DIR, the suite's fake OpenAI-compatible model on loopback reached through litellm), warms
each route once, then records every Python function call (sys.setprofile and
threading.setprofile, so the projection follower's thread counts too) during one more request
of each kind. A file counts when a function defined in it ran. The request's files (route to
stored event and back, read-after-write included) are split into "plumbing" and "use case" (the
rest); the follower's (every read model is offered every event) are listed apart; each by layer.
Plumbing is what every authenticated route runs, measured: the files of one traced
`GET /api/v1/auth` (middleware, authentication and the key and user read models it reads),
except its route; plus, listed by hand, what every writing route runs (dependency injection,
error mapping, the command context, the store's save path).

Run from the repo root:  .venv/bin/python bench/trace_use_case.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LAYERS = ("api", "application", "domain", "infrastructure", "projections")
# Run by every writing request or by the follower whatever it applies (what every authenticated
# request runs is added, measured, by `main`).
PLUMBING = {"api/app.py", "api/auth.py", "api/deps.py", "api/errors.py", "api/metrics.py", "api/requestlog.py",
            "api/wiring.py", "application/access.py", "application/authentication.py", "application/ledger.py",
            "domain/hashing.py", "domain/principal.py",
            "infrastructure/memory_cache.py", "infrastructure/ratelimit.py", "infrastructure/clock.py",
            "projections/runner.py", "projections/follower.py", "projections/base.py", "projections/tx.py", "projections/stall.py",
            "infrastructure/eventstore.py", "infrastructure/sqlite_store.py", "infrastructure/mapper.py",
            "infrastructure/chain.py", "infrastructure/tokens.py", "api/presenters/__init__.py",
            # the save path (sealing in the mapper, waking the webhook deliverer) and every view's base
            "infrastructure/content_keys.py", "infrastructure/webhooks.py", "projections/readmodel.py"}


class Tracer:
    """A profile hook in every thread from the start (threads made later inherit it; Python 3.11
    cannot reach threads that already run), recording only while `recording()` is open."""

    def __init__(self) -> None:
        self.root = str(REPO) + os.sep
        self.seen: dict[str, set[str]] | None = None
        self.lock = threading.Lock()
        threading.setprofile(self.profile)
        sys.setprofile(self.profile)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:  # noqa: ARG002
        seen = self.seen
        if seen is not None and event == "call":
            name = frame.f_code.co_filename
            if name.startswith(self.root):
                relative = name[len(self.root):]
                if relative.split(os.sep, 1)[0] in LAYERS:
                    side = "follower" if threading.current_thread().name.startswith("ledgerllm-") else "request"
                    with self.lock:
                        seen[side].add(relative)

    @contextmanager
    def recording(self) -> Iterator[dict[str, set[str]]]:
        """Every repo file (outside tests/ and bench/) a function of which ran meanwhile, by the
        side that ran it: "request" (the route's threads) or "follower" (the read models)."""
        seen: dict[str, set[str]] = {"request": set(), "follower": set()}
        self.seen = seen
        try:
            yield seen
        finally:
            self.seen = None


def report(title: str, sides: dict[str, set[str]], plumbing_files: set[str]) -> None:
    files = sides["request"]
    use_case = sorted(files - plumbing_files)
    plumbing = sorted(files & plumbing_files)
    follower = sorted(sides["follower"] - files)
    print(f"\n{title}: the request ran {len(files)} files ({len(use_case)} use case + {len(plumbing)} plumbing);"
          f" the follower applying its events ran {len(follower)} more")
    for label, group in (("use case", use_case), ("plumbing", plumbing), ("follower", follower)):
        for layer in LAYERS:
            names = [f for f in group if f.startswith(layer + "/")]
            if names:
                print(f"  {label:9} {layer:15} {', '.join(n[len(layer) + 1:] for n in names)}")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tracer = Tracer()
    from litestar.testing import TestClient

    from api.app import create_app
    from infrastructure.settings import load_settings
    from harness.llm_server import LLMServer

    model = LLMServer().start()
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = load_settings({}, data_dir=Path(data_dir), llm_model="openai/test-model",
                                     llm_api_base=model.base_url, llm_api_key="sk-test-model",
                                     llm_context_window=4096)
            with TestClient(create_app(settings)) as client:
                key = bootstrap_key(client)
                headers = {"Authorization": f"Bearer {key}"}
                assert client.post("/api/v1/workspace/new", headers=headers, json={"name": "w"}).status_code == 200

                def create_key() -> None:
                    got = client.post("/api/system/generate-api-key", headers=headers, json={})
                    assert got.status_code == 200, got.text

                def chat() -> None:
                    model.reply("hello")
                    got = client.post("/api/v1/workspace/w/chat", headers=headers, json={"message": "hi"})
                    assert got.status_code == 200, got.text

                def check_key() -> None:
                    assert client.get("/api/v1/auth", headers=headers).status_code == 200

                plumbing = set(PLUMBING)
                for title, request in (("check the key (GET /api/v1/auth)", check_key),
                                       ("create an API key", create_key), ("send a chat with an API key", chat)):
                    request()  # warm: imports and first-use caches are not the use case
                    settle()
                    with tracer.recording() as files:
                        request()
                        settle()
                    report(title, files, plumbing)
                    if request is check_key:  # what every authenticated route runs, but its route
                        plumbing |= {f for f in files["request"] if not f.startswith("api/routes/")}
    finally:
        model.stop()


def bootstrap_key(client: Any) -> str:
    from application.apikeys import CreateApiKey, create_api_key
    from application.users import principal_for

    ctx = client.app.state.runtime.ctx
    owner = principal_for(ctx, ctx.accounts.user(ctx.accounts.owner_id()))
    return create_api_key(ctx, CreateApiKey(principal=owner, correlation_id="trace")).secret


def settle(wait: Callable[[float], None] = time.sleep) -> None:
    """Let the follower apply what the request stored, so its files are counted with it."""
    wait(1.0)


if __name__ == "__main__":
    main()
