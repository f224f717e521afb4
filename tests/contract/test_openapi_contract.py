"""Every operation of our own OpenAPI (GET /api/docs/openapi.json), exercised with generated
valid and invalid requests on both backends: no 5xx, only documented statuses, bodies that
validate against the documented schema, no event stored by a request answered 4xx, and the
store's digest chain intact after the run. Figures are printed at the end of the session."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
import schemathesis

from tests.contract.runner import DEFAULT_EXAMPLES, EXAMPLES, RESULTS, exercise
from tests.support.app import Backend


def _operation_ids() -> list[str]:
    """Read at collection time from the app's schema; the served one is compared in a test."""
    from api.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        spec = create_app(Backend("sqlite", Path(tmp)).settings()).openapi_schema.to_schema()
    return [op["operationId"] for ops in spec["paths"].values() for op in ops.values() if isinstance(op, dict)]


OPERATIONS = _operation_ids()

# Why operations fail today (the route owners fix these); each entry names every reason seen in a
# run of CONTRACT_EXAMPLES=40.
BODY_400 = "a 400 answers {error} or the route's own shape; Litestar's {status_code, detail, extra} is documented"
BODY_403 = "a 403 answers the route's own shape, not the documented ErrorBody"
UNDOC_401 = "answers 401, which is not documented"
UNDOC_404 = "answers 404, which is not documented"
UNDOC_422 = "answers 422, which is not documented"
UNDOC_429 = "answers 429, which is not documented"
PLAIN_200 = "a 200 is text/plain (an empty body) where application/json is documented"


def because(*reasons: str) -> str:
    return "; ".join(reasons)


# Operations known to break their contract, each with the reason; the routes' owners convert
# them to typed Structs and documented statuses, and empty this list. strict: an operation
# that passes while listed fails the run, so the list cannot go stale.
# Runs smaller than the default may miss a listed operation's failure: strict only from there up.
STRICT = EXAMPLES >= DEFAULT_EXAMPLES
EXPECTED_TO_FAIL: dict[str, str] = {
}


@pytest.fixture(scope="module")
def schema(target):
    response = target.http.get("/api/docs/openapi.json")
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json())


def test_the_served_schema_has_the_operations_collected(schema):
    served = [r.ok().definition.raw["operationId"] for r in schema.get_all_operations()]
    assert sorted(served) == sorted(OPERATIONS)


@pytest.mark.parametrize("operation_id", [
    pytest.param(o, marks=pytest.mark.xfail(strict=STRICT, reason=EXPECTED_TO_FAIL[o])) if o in EXPECTED_TO_FAIL
    else o for o in OPERATIONS])
def test_operation_keeps_its_contract(target, schema, operation_id):
    result = exercise(target, schema, operation_id)
    RESULTS.append(result)
    assert result.cases > 0, f"no case could be sent for {operation_id}"
    assert not result.failures, result.report()


def test_the_run_left_the_digest_chain_intact(target):
    target.ensure()
    report = target.ok("GET", "/api/v1/admin/audit/verify")
    assert report["intact"] is True and report["problemCount"] == 0, report
    assert report["headPosition"] == target.head() > 0 and report["checked"] > 0


# --- documented parameter limits ----------------------------------------------------------
# Times an offset carries out of the range a datetime has once in UTC (a 500 before).
EDGE_TIMES = ["0001-01-01T00:00:00+18:00", "9999-12-31T23:59:59-18:00", "not-a-time"]
PROBES = ["abc", "0", "-1", "9" * 16, "x" * 300, "1" + "0" * 30]


def _breaking(param: dict) -> list[str]:
    """Values that break a parameter's documented schema (a union breaks when every member
    does: only limits of its non-null members are used, and only where no member allows), and
    for a time (a date-time, or text documented as an ISO 8601 time) the edge times."""
    schema = param.get("schema", {})
    members = [m for m in schema.get("oneOf", schema.get("anyOf", [schema])) if m.get("type") != "null"]
    values: list[str] = []
    for m in members:
        if "maximum" in m:
            values += [str(int(m["maximum"]) + 1), "1" + "0" * 30]
        if "minimum" in m:
            values.append(str(int(m["minimum"]) - 1))
        if "maxLength" in m:
            values.append("x" * (int(m["maxLength"]) + 1))
        if "pattern" in m:
            values += [p for p in PROBES if not re.search(m["pattern"], p)][:2]
        if "enum" in m:
            values.append("not-one-of-these")
    times = EDGE_TIMES if any(m.get("format") == "date-time" for m in members) or \
        "ISO 8601" in param.get("description", "") else []
    return [v for v in dict.fromkeys(values) if not any(_allows(m, v) for m in members)] + times


def _allows(m: dict, value: str) -> bool:
    if m.get("type") == "string" and "enum" not in m:
        return len(value) <= m.get("maxLength", 1 << 30) and ("pattern" not in m or bool(re.search(m["pattern"], value)))
    return False


def test_every_documented_parameter_limit_is_enforced(target, schema):
    """A query, path or header value outside what the OpenAPI documents for it is a 400 that
    names the parameter, answered before the handler, and stores nothing. Operations with a
    body get no body here, so for them only a query or header value is sent."""
    target.ensure()
    spec = schema.raw_schema
    refused, head = 0, target.head()
    failures: list[str] = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if not isinstance(op, dict):
                continue
            params = op.get("parameters", [])
            for p in params:
                if p["in"] not in ("query", "path", "header") or (p["in"] == "path" and "requestBody" in op):
                    continue
                for value in _breaking(p):
                    url = path
                    for other in params:
                        if other["in"] == "path":
                            real = value if other is p else target.paths.get(other["name"], ["1"])[0]
                            url = url.replace("{" + other["name"] + "}", quote(real, safe=""))
                    query = {p["name"]: value} if p["in"] == "query" else None
                    headers = {p["name"]: value} if p["in"] == "header" else {}
                    response = target.call(method.upper(), url, params=query, headers=headers,
                                           **({"json": {}} if "requestBody" in op else {}))
                    if response.status_code != 400 or p["name"] not in response.text:
                        failures.append(f"{method.upper()} {path} {p['in']} {p['name']}={value[:40]!r}: "
                                        f"{response.status_code} {response.text[:160]}")
                    refused += 1
    assert not failures, "\n".join(failures)
    assert refused > 50 and target.head() == head
