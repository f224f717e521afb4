"""Helpers for the command-sequence property test (tests/e2e/test_command_sequences.py):
boundary-value strategies, the figures printed at the end of the run, and the checks made
after each sequence (every read model at the head, none stalled, each equal to its rebuild)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.support.app import Backend, bearer

# --- how much to run: small and fixed in CI, more locally -------------------------------------
EXAMPLES = int(os.environ.get("SEQUENCE_EXAMPLES", "3"))  # sequences per backend
STEPS = int(os.environ.get("SEQUENCE_STEPS", "40"))  # commands per sequence, at most
SEED = os.environ.get("SEQUENCE_SEED")  # unset: derandomized (the same sequences every run)
SHRINK = os.environ.get("SEQUENCE_SHRINK") == "1"  # shrinking replays sequences: slow, off in CI
LOG = os.environ.get("SEQUENCE_LOG")  # a file: every command and its answer, to read what was tried


def log(line: str) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line.replace("\n", "\\n") + "\n")

# --- boundary values ---------------------------------------------------------------------------
EDGE_TEXT = ["", " ", "\x00", "a\x00b", "\t\n", "é", "Ｗｏｒｋ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u202eevil", "reports\u3000",
             "\ufeffbom", "😀" * 40, "x" * 256, "../../etc/passwd", "%00", "<script>", "null", "0", "  padded  "]
EDGE_INTS = [0, -1, 1, 2, 2**31 - 1, 2**31, -2**31, 2**53 + 1, 2**63 - 1, 2**63, -2**63, 2**64, 10**30, -10**30]
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.0, -1.0, 1.5, 2.0, 1e-320, 1e308, -1e308, 100.0]

# Mostly plausible values (so that sequences get deep), often boundary ones.
plain = st.from_regex(r"[a-z][a-z0-9_\-]{1,12}", fullmatch=True)
texts = st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=24), plain)
names = st.one_of(plain, st.sampled_from(EDGE_TEXT), plain, st.text(min_size=1, max_size=16), plain)
passwords = st.one_of(st.from_regex(r"[A-Za-z0-9]{8,20}", fullmatch=True), st.text(min_size=8, max_size=30),
                      st.sampled_from(EDGE_TEXT), st.from_regex(r"[A-Za-z0-9]{8,20}", fullmatch=True))
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-5, 50), st.integers(1, 20))
floats = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(-10, 10, allow_nan=False), st.floats(0, 1))
# a value of any JSON type, for fields whose type a client may get wrong
loose = st.one_of(st.none(), st.booleans(), ints, floats, texts, st.lists(st.integers(-2, 3), max_size=3),
                  st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2))
picks = st.integers(0, 10_000)  # an index into what the sequence made so far (modulo), or past it


def pick(items: list[Any], index: int, missing: Any) -> Any:
    """One of `items`, or (one time in eight, or when there is none) something that does not exist."""
    return items[index % len(items)] if items and index % 8 != 7 else missing


# --- the figures printed at the end ------------------------------------------------------------
@dataclass
class BackendFigures:
    sequences: int = 0
    commands: int = 0
    http: int = 0
    cli: int = 0
    events: int = 0
    stalls: int = 0
    mismatches: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


FIGURES: dict[str, BackendFigures] = {}


def figures_for(backend: str) -> BackendFigures:
    return FIGURES.setdefault(backend, BackendFigures())


def summary_lines() -> list[str]:
    lines = []
    for name, f in sorted(FIGURES.items()):
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(f.statuses.items()))
        lines.append(f"{name}: {f.sequences} sequences, {f.commands} commands ({f.http} HTTP, {f.cli} CLI), "
                     f"{f.events} events stored, stalls: {f.stalls}, verify mismatches: {f.mismatches}, "
                     f"{f.seconds:.0f} s (seed {SEED or 'derandomized'}; HTTP statuses {statuses})")
    return lines


# --- after each sequence ------------------------------------------------------------------------
def wait_at_head(client: Any, admin_key: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Wait until every read model the server runs has applied the last stored event."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/v1/admin/projections", headers=bearer(admin_key))
        assert response.status_code == 200, response.text
        rows = response.json()["projections"]
        if all(r["behind"] == 0 for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def lag_report(client: Any) -> str:
    """Why read models are behind: each runner's positions, and where the follower thread is."""
    import sys
    import threading
    import traceback

    runtime = client.app.state.runtime
    lines = [f"{r.name}: reached {r.position()} stored {r.view.position(runtime.ctx.ledger.name)}"
             for r in runtime.runners]
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread.name.startswith("ledgerllm") and thread.ident in frames:
            lines.append(f"thread {thread.name}:\n" + "".join(traceback.format_stack(frames[thread.ident])))
    return "\n".join(lines)


def stalled_projections(backend: Backend) -> list[dict[str, Any]]:
    """`ledgerllm projections status --json`: the read models that stopped at an event."""
    result = backend.cli("projections", "status", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 6, result.stdout
    return [r for r in rows if r["stalled"]]


def verify_mismatches(backend: Backend) -> list[dict[str, Any]]:
    """`ledgerllm verify --json`: the read models that differ from their rebuild."""
    result = backend.cli("verify", "--json", check=False)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 6, result.stdout + result.stderr
    return [r for r in rows if not r["same"]]
