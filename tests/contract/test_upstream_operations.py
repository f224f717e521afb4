"""Our OpenAPI serves every operation of upstream's (../shared/reference/anythingllm-openapi.json,
whose paths lack our /api prefix): same method, same path shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.app import client_for

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "anythingllm-openapi.json"
METHODS = {"get", "post", "put", "patch", "delete"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_openapi_holds_all_63_of_upstreams_operations(sqlite_backend):
    assert REFERENCE.exists(), f"AnythingLLM reference missing: expected {REFERENCE} (../shared beside the clone)"
    reference = json.loads(REFERENCE.read_text())
    upstream = {(m.upper(), _shape("/api" + p)) for p, ops in reference["paths"].items() for m in ops if m in METHODS}
    with client_for(sqlite_backend) as client:
        response = client.get("/api/docs/openapi.json")
    assert response.status_code == 200
    ours = {(m.upper(), _shape(p)) for p, ops in response.json()["paths"].items() for m in ops if m in METHODS}
    assert len(upstream) == 63
    assert sorted(upstream - ours) == []
    assert len(upstream & ours) == 63
