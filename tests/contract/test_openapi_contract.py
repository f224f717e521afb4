"""Every operation of our own OpenAPI (GET /api/docs/openapi.json), exercised with generated
valid and invalid requests on both backends: no 5xx, only documented statuses, bodies that
validate against the documented schema, no event stored by a request answered 4xx, and the
store's digest chain intact after the run. Figures are printed at the end of the session."""

from __future__ import annotations

import tempfile
from pathlib import Path

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
