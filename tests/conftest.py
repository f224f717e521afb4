"""Shared pytest fixtures."""

import os

# Keep third-party libraries off the network; set before anything imports them.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from harness.servers import PostgresServer, RedisServer  # noqa: E402

# --- servers ---
# One real PostgreSQL and one real Redis per test run; each test gets its own
# empty database and a flushed Redis.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer.running() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """URL of a new, empty database for this test only."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the shared Redis, emptied before this test."""
    redis_server.flushall()
    return redis_server.url


# --- app ---
# Each test body runs once embedded (SQLite files, in-process cache) and once scaled out
# (PostgreSQL and Redis), unless it asks for one backend.
from tests.support.app import Backend, client_for  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path / "data")
    return Backend("postgres", tmp_path / "data", request.getfixturevalue("pg_url"),
                   request.getfixturevalue("redis_url"))


@pytest.fixture
def sqlite_backend(tmp_path) -> Backend:
    return Backend("sqlite", tmp_path / "data")


@pytest.fixture
def pg_backend(tmp_path, pg_url: str, redis_url: str) -> Backend:
    return Backend("postgres", tmp_path / "data", pg_url, redis_url)


@pytest.fixture
def client(backend: Backend):
    with client_for(backend) as c:
        yield c


# --- model ---
# A real OpenAI-compatible server on loopback: the app reaches it through litellm's real client.
from harness.llm_server import LLMServer  # noqa: E402

PROVIDER_KEY = "sk-test-provider-key-9f8e7d"


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LLMServer]:
    server = LLMServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llm(llm_server: LLMServer) -> LLMServer:
    llm_server.reset()
    return llm_server


@pytest.fixture
def llm_settings(llm: LLMServer) -> dict:
    """Settings overrides that point the app at the loopback model."""
    return {"llm_model": "openai/test-model", "llm_api_base": llm.base_url, "llm_api_key": PROVIDER_KEY,
            "llm_context_window": 4096, "llm_timeout": 10.0}
