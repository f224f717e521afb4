"""The `openai` Python SDK, unchanged, on every OpenAI-compatible route we serve
(`/api/v1/openai/...`) of a real `ledgerllm serve`, on both backends: models, chat completions
whole and streamed, embeddings, vector stores and images; and its error classes for the
statuses upstream answers (bad key 403, bad body 400, unknown model 401)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from harness.llm_server import TINY_PNG, LLMServer
from tests.conftest import PROVIDER_KEY
from tests.support.app import Backend
from tests.support.process import running_server


class Served:
    def __init__(self, url: str, key: str, slug: str) -> None:
        self.url, self.key, self.slug = url, key, slug

    def sdk(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(api_key=key or self.key, base_url=f"{self.url}/api/v1/openai", max_retries=0, timeout=60)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request, tmp_path_factory, llm_server: LLMServer) -> Iterator[Served]:
    root = tmp_path_factory.mktemp(f"sdk-{request.param}")
    if request.param == "sqlite":
        backend = Backend("sqlite", root / "data")
    else:
        pg, redis = request.getfixturevalue("postgres_server"), request.getfixturevalue("redis_server")
        redis.flushall()
        backend = Backend("postgres", root / "data", pg.create_database(f"sdk_{uuid.uuid4().hex[:10]}"), redis.url)
    key = backend.cli("api-keys", "create", "--name", "sdk").stdout.strip()
    env = {"LLM_MODEL": "openai/test-model", "LLM_API_BASE": llm_server.base_url, "LLM_API_KEY": PROVIDER_KEY,
           "LLM_CONTEXT_WINDOW": "4096", "LLM_TIMEOUT": "10", "IMAGE_GEN_MODEL": "openai/test-image-model"}
    with running_server(backend, root / "server.log", env=env) as server:
        made = httpx.post(f"{server.url}/api/v1/workspace/new", json={"name": "SDK Space"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert made.status_code == 200, made.text
        yield Served(server.url, key, made.json()["workspace"]["slug"])


def test_models_lists_the_workspaces(served):
    ids = [m.id for m in served.sdk().models.list()]
    assert served.slug in ids


def test_chat_completion(served, llm):
    reply = served.sdk().chat.completions.create(model=served.slug, messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "Echo: ping"
    assert reply.model == served.slug


def test_streamed_chat_completion(served, llm):
    llm.reply("one two three")
    stream = served.sdk().chat.completions.create(model=served.slug, stream=True,
                                                  messages=[{"role": "user", "content": "count"}])
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == "one two three" and len(pieces) > 1


def test_embeddings(served):
    result = served.sdk().embeddings.create(input=["first text", "second text"], model="any")
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 384 for d in result.data)


def test_vector_stores(served):
    stores = list(served.sdk().vector_stores.list())
    assert served.slug in [s.id for s in stores]


def test_images(served, llm):
    result = served.sdk().images.generate(prompt="a lighthouse", model="dall-e-3", size="1024x1024")
    assert base64.b64decode(result.data[0].b64_json) == TINY_PNG
    assert llm.image_requests[-1].body["prompt"] == "a lighthouse"


def test_a_bad_key_is_permission_denied(served):
    with pytest.raises(openai.PermissionDeniedError) as error:
        served.sdk(key="sk-" + "x" * 28).models.list()
    assert error.value.status_code == 403


def test_a_bad_body_is_a_bad_request(served):
    with pytest.raises(openai.BadRequestError):
        served.sdk().chat.completions.create(model=served.slug, messages=[])


def test_an_unknown_model_is_what_upstream_answers(served):
    with pytest.raises(openai.AuthenticationError):
        served.sdk().chat.completions.create(model="no-such-workspace", messages=[{"role": "user", "content": "x"}])
