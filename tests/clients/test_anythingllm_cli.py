"""AnythingLLM's official CLI (`@mintplex-labs/anything-llm-cli`, pinned) against a real
`ledgerllm serve` and the loopback model, as a user runs it: `any setup`, then `any prompt`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from harness.llm_server import TINY_PNG, LLMServer
from tests.clients.anything_cli import ANY, INSTALL_HINT, AnyCli, Terminal
from tests.conftest import PROVIDER_KEY
from tests.support.app import Backend
from tests.support.process import ServerProcess, running_server

DEFAULT_SLUG = "anythingllm-cli-default-workspace"  # the CLI's own default


def llm_env(llm: LLMServer) -> dict[str, str]:
    return {"LLM_MODEL": "openai/test-model", "LLM_API_BASE": llm.base_url, "LLM_API_KEY": PROVIDER_KEY,
            "LLM_CONTEXT_WINDOW": "4096", "LLM_TIMEOUT": "10"}


class Served:
    """A running server, the owner's key (made by `ledgerllm api-keys create`) and the CLI."""

    def __init__(self, server: ServerProcess, key: str, home: Path) -> None:
        self.server, self.key = server, key
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        self.cli = AnyCli(home, server.url, key)

    def get(self, path: str) -> dict:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session", autouse=True)
def cli_installed() -> None:
    assert ANY.exists(), f"AnythingLLM CLI not installed at {ANY}: {INSTALL_HINT}"


@contextmanager
def _serve(backend: Backend, log: Path, llm: LLMServer, home: Path) -> Iterator[Served]:
    key = backend.cli("api-keys", "create", "--name", "cli").stdout.strip()
    home.mkdir(exist_ok=True)
    with running_server(backend, log, env=llm_env(llm)) as server:
        served = Served(server, key, home)
        try:
            yield served
        finally:
            served.http.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, llm_server: LLMServer) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("cli")
    with _serve(Backend("sqlite", root / "data"), root / "server.log", llm_server, root / "home") as s:
        yield s


@pytest.fixture
def notes(served: Served) -> str:
    """A workspace of its own for the test (named ones are used with -w)."""
    made = served.http.post("/api/v1/workspace/new", json={"name": f"Notes {len(served.get('/api/v1/workspaces')['workspaces'])}"})
    return made.json()["workspace"]["slug"]


def _user_message(llm: LLMServer) -> dict:
    return [m for m in llm.chat_requests[-1].body["messages"] if m["role"] == "user"][-1]


def test_setup_accepts_our_31_character_key_and_writes_the_shell_config(served, llm):
    assert len(served.key) == 31
    term = Terminal([str(ANY), "setup"], served.cli.env(), served.cli.home)
    term.expect("What type of AnythingLLM instance")
    term.send("\x1b[B\r")  # the second choice: Cloud or Self-Hosted
    term.expect("instance URL")
    term.send(served.server.url + "\r")
    term.expect("API Key")
    term.send("sk-too-short\r")  # the CLI's own check, the one our old 35-character keys failed
    term.expect("API Key must be 31 characters long")
    term.send("\x7f" * len("sk-too-short") + served.key + "\r")
    term.expect("Setup complete")
    assert term.close() == 0
    bashrc = (served.cli.home / ".bashrc").read_text()
    assert f'export ANYTHING_LLM_API_KEY="{served.key}"' in bashrc
    assert f'export ANYTHING_LLM_BASE_URL="{served.server.url}"' in bashrc


def test_first_prompt_on_a_fresh_server_creates_the_default_workspace(backend, tmp_path, llm):
    with _serve(backend, tmp_path / "server.log", llm, tmp_path / "home") as s:
        first = s.cli.run("prompt", "hello", "there")
        assert first.returncode == 0, first.stderr
        assert "Echo: hello there" in first.stdout
        workspace = s.get(f"/api/v1/workspace/{DEFAULT_SLUG}")["workspace"]
        assert [w["name"] for w in workspace] == ["AnythingLLM CLI Default Workspace"]
        assert "AnythingLLM CLI tool" in workspace[0]["openAiPrompt"]
        system = [m for m in llm.chat_requests[-1].body["messages"] if m["role"] == "system"][0]
        assert "AnythingLLM CLI tool" in system["content"]
        again = s.cli.run("prompt", "once", "more")
        assert again.returncode == 0 and "Echo: once more" in again.stdout, again.stderr
        assert [w["slug"] for w in s.get("/api/v1/workspaces")["workspaces"]] == [DEFAULT_SLUG]


def test_prompt_in_a_named_workspace_without_streaming(served, notes, llm):
    result = served.cli.run("prompt", "-w", notes, "-S", "what", "now")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo: what now\n"
    history = served.get(f"/api/v1/workspace/{notes}/chats")["history"]
    assert [h["content"] for h in history] == ["what now", "Echo: what now"]


def test_streamed_answer_is_printed_as_it_arrives(served, notes, llm):
    llm.reply("Streams arrive in pieces.")
    result = served.cli.run("prompt", "-w", notes, "tell", "me")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Streams arrive in pieces."
    assert llm.chat_requests[-1].body["stream"] is True


def test_new_thread_and_then_that_thread_by_slug(served, notes, llm):
    first = served.cli.run("prompt", "-w", notes, "--nt", "-S", "first", "question")
    assert first.returncode == 0 and first.stdout == "Echo: first question\n", first.stderr
    threads = served.get(f"/api/v1/workspace/{notes}/threads")["threads"]
    assert len(threads) == 1 and threads[0]["name"].startswith("AnythingLLM CLI Thread - ")
    slug = threads[0]["slug"]
    second = served.cli.run("prompt", "-w", notes, "-t", slug, "second", "question")  # streamed
    assert second.returncode == 0 and "Echo: second question" in second.stdout, second.stderr
    history = served.get(f"/api/v1/workspace/{notes}/thread/{slug}/chats")["history"]
    assert [h["content"] for h in history if h["role"] == "user"] == ["first question", "second question"]
    assert served.get(f"/api/v1/workspace/{notes}/chats")["history"] == []  # thread chats stay in the thread


def test_piped_stdin_comes_before_the_prompt(served, notes, llm):
    result = served.cli.run("prompt", "-w", notes, "-S", "explain", stdin="error: disk full\n")
    assert result.returncode == 0, result.stderr
    assert _user_message(llm)["content"] == "error: disk full\n explain"


def test_an_attached_image_reaches_the_model(served, notes, llm, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(TINY_PNG)
    result = served.cli.run("prompt", "-w", notes, "-S", "what is this", "-a", str(photo))
    assert result.returncode == 0, result.stderr
    content = _user_message(llm)["content"]
    assert isinstance(content, list), json.dumps(content)[:300]
    images = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
    assert images == ["data:image/png;base64," + base64.b64encode(TINY_PNG).decode()]
    assert any(p.get("type") == "text" and "what is this" in p["text"] for p in content)
