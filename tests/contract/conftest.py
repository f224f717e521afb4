"""Contract-test fixtures: one seeded server per backend, and the figures printed at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROVIDER_KEY
from tests.contract.runner import EXAMPLES, RESULTS
from tests.contract.target import Target, running_target
from tests.support.app import Backend

@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, llm_server) -> Iterator[Target]:
    root = tmp_path_factory.mktemp(f"contract-{request.param}")
    if request.param == "sqlite":
        backend = Backend("sqlite", root / "data")
    else:
        pg, redis = request.getfixturevalue("postgres_server"), request.getfixturevalue("redis_server")
        redis.flushall()
        backend = Backend("postgres", root / "data", pg.create_database(f"contract_{uuid.uuid4().hex[:10]}"),
                          redis.url)
    llm_env = {"LLM_MODEL": "openai/test-model", "LLM_API_BASE": llm_server.base_url, "LLM_API_KEY": PROVIDER_KEY, "FEED_STREAM_SECONDS": "1",
               "LLM_CONTEXT_WINDOW": "4096", "LLM_TIMEOUT": "10", "LOG_LEVEL": "WARNING"}
    with running_target(backend, root / "server.log", llm_env) as t:
        yield t


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("contract figures")
    for backend in sorted({r.backend for r in RESULTS}):
        rows = [r for r in RESULTS if r.backend == backend]
        failing = [r for r in rows if r.failures]
        write(f"{backend}: {len(rows)} operations exercised, {sum(r.cases for r in rows)} cases generated "
              f"({EXAMPLES} valid + {max(1, EXAMPLES // 2)} invalid per operation), "
              f"{sum(len(r.failures) for r in rows)} failures in {len(failing)} operations, "
              f"{sum(r.seconds for r in rows):.0f} s")
        for r in failing:
            write(f"  {r.label} ({r.operation_id}): " + "; ".join(r.failures))
    if report := os.environ.get("CONTRACT_REPORT"):  # every failure with an example, for route owners
        Path(report).write_text("\n\n".join(r.report() for r in RESULTS if r.failures) + "\n")
        write(f"contract failures with examples written to {report}")
