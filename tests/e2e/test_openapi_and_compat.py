"""Swagger at /api/docs, and the foundation's routes checked against AnythingLLM's own
OpenAPI file (../shared/reference): same paths and methods, example keys present."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import msgspec
import pytest

from api.app import create_app

from tests.support.app import bearer, client_for, multi_user_keys

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "anythingllm-openapi.json"
# Routes of the workspaces and chat issues are checked by their own tests.
LATER = re.compile(r"/workspaces?/|/workspace-chats")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture(scope="module")
def reference() -> dict:
    assert REFERENCE.exists(), f"AnythingLLM reference missing: expected {REFERENCE} (../shared beside the clone)"
    return json.loads(REFERENCE.read_text())


def _foundation_ops(reference: dict):
    for path, ops in reference["paths"].items():
        for method, op in ops.items():
            tags = set(op.get("tags", []))
            if tags & {"Authentication", "Admin", "User Management"} and not LATER.search(path):
                yield method.upper(), path, op


def test_swagger_ui_and_openapi_json_are_served(sqlite_backend):
    with client_for(sqlite_backend) as client:
        ui = client.get("/api/docs")
        assert ui.status_code == 200 and "swagger" in ui.text.lower()
        spec = client.get("/api/docs/openapi.json")
        assert spec.status_code == 200
        doc = spec.json()
    assert doc["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("tags") in (["Public"], ["Health"]):  # no credential, nothing to refuse
                continue
            assert "403" in op["responses"], (method, path)
            schema = op["responses"]["403"]["content"]["application/json"]["schema"]
            # `{error}`, or the route family's upstream shape; each says what went wrong
            name = schema["$ref"].rpartition("/")[2]
            props = doc["components"]["schemas"][name]["properties"]
            assert {"error", "message"} & set(props), (method, path, name)
            assert "200" in op["responses"], (method, path)
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    body = doc["paths"]["/api/v1/admin/users/new"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("NewUserBody")


def test_every_foundation_route_of_anythingllm_exists_here(reference, sqlite_backend):
    with client_for(sqlite_backend) as client:
        ours = {(m.upper(), _shape(p)) for p, ops in client.get("/api/docs/openapi.json").json()["paths"].items()
                for m in ops}
    missing = [(m, p) for m, p, _ in _foundation_ops(reference) if (m, _shape("/api" + p)) not in ours]
    assert missing == []
    assert len(list(_foundation_ops(reference))) == 12


def test_responses_carry_the_keys_of_upstreams_examples(reference, backend):
    with client_for(backend, simple_sso_enabled=True) as client:
        keys = multi_user_keys(client)
        invite = client.post("/api/v1/admin/invite/new", headers=bearer(keys["admin"])).json()["invite"]
        ids = {"id": str(keys["default_id"])}
        for method, path, op in _foundation_ops(reference):
            example = (op["responses"].get("200", {}).get("content", {}).get("application/json", {})
                       .get("schema", {}).get("example"))
            body = (op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example"))
            if path == "/v1/admin/users/new":
                body = {"username": "sample-sam", "password": "hunter2-long", "role": "default"}
            if path == "/v1/admin/users/{id}" and method == "POST":
                body = {"bio": "hello"}
            if path == "/v1/admin/invite/new":
                body = {"workspaceIds": [1, 2, 45]}
            url = "/api" + path.replace("{id}", str(invite["id"]) if "invite" in path else ids["id"])
            if method == "DELETE" and "users" in path:
                continue  # deleting the fixture user would break the routes after it; covered elsewhere
            response = client.request(method, url, json=body, headers=bearer(keys["admin"]))
            assert response.status_code == 200, (method, path, response.text)
            if isinstance(example, dict):
                got = response.json()
                assert set(example) <= set(got), (method, path, set(example) - set(got))
                for key, value in example.items():
                    if isinstance(value, list) and value and isinstance(value[0], dict) and got[key]:
                        assert set(value[0]) <= set(got[key][0]), (method, path, key)
                    if isinstance(value, dict) and isinstance(got[key], dict):
                        assert set(value) <= set(got[key]), (method, path, key)


def _metas(annotation: object) -> list[object]:
    """Every msgspec Meta inside a type (through Annotated, unions and generics)."""
    found = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, msgspec.Meta)]
    for arg in typing.get_args(annotation):
        found += _metas(arg)
    return found


def test_no_route_parameter_keeps_its_limits_in_a_msgspec_meta(sqlite_backend):
    """Litestar checks and documents the limits of a query, path or header parameter given as
    `Parameter(ge=..., max_length=...)`; a msgspec Meta inside the parameter's type it neither
    checks nor documents (`?after=-5` reached a handler, and a 21-digit one made it a 500).
    Request bodies are Structs, where Meta is checked."""
    app = create_app(sqlite_backend.settings())
    hidden = [f"{h.operation_id or h.handler_name}: {name}"
              for route in app.routes for h in getattr(route, "route_handlers", [])
              for name, field in h.parsed_fn_signature.parameters.items()
              if name != "data" and _metas(field.raw)]
    assert not hidden, "\n".join(hidden)
