"""Runs one OpenAPI operation's generated cases against a Target and collects what broke.

Cases come from schemathesis (valid ones, and invalid ones that break the documented schema),
as every role (admin, manager, default, no key). Valid cases hit the seeded objects' ids
half of the time. Every response is checked for: no 5xx, a documented status, the documented
content type, a body that validates against that status's schema (JSON, SSE frames, plain
text), and, for a 4xx, no event stored by the request. Failures are collected, not raised, so
one run reports every kind of failure an operation has."""

from __future__ import annotations

import os
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.contract.target import ROLES, Target

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Examples per operation and mode; CONTRACT_EXAMPLES scales the run (e.g. 200 for a long one).
DEFAULT_EXAMPLES = 8
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", DEFAULT_EXAMPLES))
NEGATIVE_SHARE = 0.5


@dataclass
class OperationResult:
    operation_id: str
    label: str
    backend: str
    cases: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # kind -> first example

    def record(self, kind: str, example: str) -> None:
        self.failures.setdefault(kind, example)

    def report(self) -> str:
        lines = [f"{self.label} ({self.operation_id}, {self.backend}): {len(self.failures)} kind(s) of failure "
                 f"in {self.cases} cases"]
        for kind, example in self.failures.items():
            lines += [f"- {kind}", textwrap.indent(example, "    ")]
        return "\n".join(lines)


RESULTS: list[OperationResult] = []  # every operation's result in this session, for the summary


def _describe(case: Any, response: requests.Response | None, detail: str) -> str:
    body = "-" if type(case.body).__name__ == "NotSet" else case.body
    body = body[:200] if isinstance(body, (bytes, bytearray)) else body
    request = f"{case.method} {case.formatted_path} query={case.query or {}} body={str(body)[:300]}"
    answer = "" if response is None else f"\n-> {response.status_code} {response.text[:300]}"
    return f"{request}{answer}\n{detail[:600]}"


def _failure_kinds(error: BaseException) -> list[tuple[str, str]]:
    """(title, message) of each failure a schemathesis check raised."""
    inner = getattr(error, "exceptions", None) or [error]
    return [(getattr(e, "title", type(e).__name__), str(getattr(e, "message", e))) for e in inner]


def _strategy(target: Target, operation: Any, mode: GenerationMode) -> st.SearchStrategy:
    names = [p.name for p in operation.path_parameters] if operation.path_parameters else []
    cases = operation.as_strategy(mode)
    real = {n: target.paths[n] for n in names if n in target.paths}
    if mode is GenerationMode.POSITIVE and real:
        pinned = st.fixed_dictionaries({n: st.sampled_from(v) for n, v in real.items()}).flatmap(
            lambda values: operation.as_strategy(mode, path_parameters=values))
        cases = st.one_of(cases, pinned)
    return st.tuples(cases, st.sampled_from([*ROLES, "none"]))


def _send(target: Target, session: requests.Session, case: Any, role: str) -> requests.Response:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    key = target.keys.get(role)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return case.call(base_url=target.url, session=session, headers=headers, timeout=60)


def _check(target: Target, result: OperationResult, case: Any, role: str, session: requests.Session) -> None:
    before = target.head()
    try:
        response = _send(target, session, case, role)
    except requests.RequestException as e:
        result.record(f"no answer ({type(e).__name__})", _describe(case, None, str(e)))
        return
    after = target.head()
    result.cases += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except (Exception, FailureGroup) as error:  # noqa: BLE001 - a failed check is data here
        for title, message in _failure_kinds(error):
            result.record(f"{response.status_code}: {title}", _describe(case, response, message))
    if 400 <= response.status_code < 500 and after != before:
        result.record(f"{response.status_code} stored {after - before} event(s)",
                      _describe(case, response, f"as {role}: positions {before + 1}..{after}"))


def exercise(target: Target, schema: Any, operation_id: str) -> OperationResult:
    operation = schema.find_operation_by_id(operation_id)
    result = OperationResult(operation_id, f"{operation.method.upper()} {operation.path}", target.backend.name)
    started = time.monotonic()
    target.ensure()
    with requests.Session() as session:
        for mode, count in ((GenerationMode.POSITIVE, EXAMPLES),
                            (GenerationMode.NEGATIVE, max(1, int(EXAMPLES * NEGATIVE_SHARE)))):
            run = settings(max_examples=count, derandomize=True, database=None, deadline=None,
                           phases=[Phase.generate], suppress_health_check=list(HealthCheck))(
                given(_strategy(target, operation, mode))(
                    lambda pair: _check(target, result, pair[0], pair[1], session)))
            try:
                run()
            except Exception as error:  # noqa: BLE001 - e.g. nothing in the schema can be made invalid
                if mode is GenerationMode.POSITIVE:
                    result.record(f"cannot generate cases ({type(error).__name__})", str(error)[:600])
    result.seconds = time.monotonic() - started
    return result
