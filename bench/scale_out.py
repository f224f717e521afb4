"""Benchmark: one `ledgerllm serve` against two (or more) on one PostgreSQL and one Redis.

Starts a throwaway PostgreSQL and Redis (the test suite's fixtures: harness/servers.py), a
zero-latency OpenAI-compatible model on loopback (harness/llm_server.py, replying at once),
and, for each process count asked for (default 1 then 2), that many `ledgerllm serve` processes,
each with its own DATA_DIR, all on the same fresh database and Redis (LOG_LEVEL=WARNING).

For each kind of write, sync chats (`POST /api/v1/workspace/{slug}/chat`, each wrk connection its
own session) and key creations (`POST /api/system/generate-api-key`), wrk runs at rising
connection counts (--levels), the connections split evenly over the processes (one wrk per
process, run together; requests/s summed, the worst p99 taken). "Sustained" is the highest
requests/s of a level whose p99 stayed under 1 s. While each level runs, pg_stat_activity is
sampled: the most connections any one process held (its `application_name` is
`ledgerllm-serve-<pid>`). Printed: a table per process count, then the ratios of N processes to
one, measured in the same run. The machine's core count is context: N processes on 2 cores share
them with PostgreSQL, Redis, the model and wrk.

Run from the repo root:  .venv/bin/python bench/scale_out.py [--processes 1 2] [--duration 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg

from common import free_port, machine_facts, stop, wait_ready
from harness.llm_server import LLMServer
from harness.servers import PostgresServer, RedisServer

P99_LIMIT_MS = 1000.0
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
CHAT_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"message": "hello there", "sessionId": "' .. SESSION .. '-' .. (counter %% 64) .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}, body)
end
"""
KEY_LUA = """
request = function()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}, "{}")
end
"""


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(f"unparsable wrk latency {value!r}")
    return float(m[1]) * _UNITS_MS[m[2]]


def wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            "p99_ms": to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1]),
            "errors": float(errors[1]) if errors else 0.0}


class ConnectionSampler:
    """The most PostgreSQL connections one `ledgerllm-serve-*` process held while running."""

    def __init__(self, url: str) -> None:
        self.url, self.peak, self._stop = url, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.2):
                rows = conn.execute("SELECT application_name, count(*) FROM pg_stat_activity"
                                    " WHERE application_name LIKE 'ledgerllm-serve-%%'"
                                    " GROUP BY application_name").fetchall()
                self.peak = max([self.peak, *(n for _, n in rows)])


def run_level(bases: list[str], path: str, script: Path, connections: int, duration: int,
              pg_url: str) -> dict[str, float]:
    share = max(1, connections // len(bases))
    results: list[dict[str, float]] = [{} for _ in bases]

    def one(i: int) -> None:
        results[i] = wrk(bases[i] + path, script, share, duration)

    with ConnectionSampler(pg_url) as sampler:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {"rps": sum(r["rps"] for r in results), "p99_ms": max(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] for r in results), "connections": sampler.peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--levels", type=int, nargs="+", default=[2, 4, 8, 16, 32], help="total wrk connections")
    parser.add_argument("--duration", type=int, default=8, help="seconds per level")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found; install it (apt-get install -y wrk)")
    ledgerllm = shutil.which("ledgerllm", path=str(Path(sys.executable).parent)) or sys.exit("run with the venv python")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="ledgerllm-scale-"))
    postgres, model = PostgresServer(), LLMServer().start()
    postgres.start()
    figures: dict[int, dict[str, list[tuple[int, dict[str, float]]]]] = {}
    try:
        with RedisServer.running() as redis:
            for count in args.processes:
                print(f"-- {count} process(es): starting", file=sys.stderr, flush=True)
                figures[count] = measure(count, args, ledgerllm, tmp / f"p{count}", postgres, redis, model)
    finally:
        model.stop()
        postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(figures, args)


def measure(count: int, args: argparse.Namespace, ledgerllm: str, tmp: Path, postgres: PostgresServer,
            redis: RedisServer, model: LLMServer) -> dict[str, list[tuple[int, dict[str, float]]]]:
    pg_url = postgres.create_database(f"scale_{count}_{os.getpid()}")
    redis.flushall()
    base_env = {**os.environ, "DATABASE_URL": pg_url, "REDIS_URL": redis.url, "LOG_LEVEL": "WARNING",
                "LLM_MODEL": "openai/test-model", "LLM_API_BASE": model.base_url, "LLM_API_KEY": "sk-bench",
                "LLM_CONTEXT_WINDOW": "8192"}
    tmp.mkdir(parents=True)
    key = subprocess.run([ledgerllm, "api-keys", "create", "--name", "bench"], env={**base_env, "DATA_DIR": str(tmp / "cli")},
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    servers, bases = [], []
    try:
        for i in range(count):
            port = free_port()
            log = tmp / f"server{i}.log"
            with log.open("w") as out:
                servers.append(subprocess.Popen([ledgerllm, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                                env={**base_env, "DATA_DIR": str(tmp / f"data{i}")}, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True))
            bases.append(f"http://127.0.0.1:{port}")
            wait_ready(bases[-1], servers[-1], log, timeout=300)
        _post(bases[0] + "/api/v1/workspace/new", key, {"name": "bench"})
        for base in bases:  # warm: the first chat on each process loads litellm
            _wait_warm(base, key)
        chat_lua, key_lua = tmp / "chat.lua", tmp / "key.lua"
        chat_lua.write_text(f'SESSION = "s{count}"\n' + CHAT_LUA % key)
        key_lua.write_text(KEY_LUA % key)
        out: dict[str, list[tuple[int, dict[str, float]]]] = {"chats": [], "keys": []}
        for kind, path, script in (("chats", "/api/v1/workspace/bench/chat", chat_lua),
                                   ("keys", "/api/system/generate-api-key", key_lua)):
            for level in args.levels:
                result = run_level(bases, path, script, level, args.duration, pg_url)
                print(f"   {kind:5} c={level:<3} {result['rps']:7.1f}/s  p99 {result['p99_ms']:7.1f} ms  "
                      f"errors {result['errors']:.0f}  pg connections/process {result['connections']}",
                      file=sys.stderr, flush=True)
                out[kind].append((level, result))
                if result["p99_ms"] > P99_LIMIT_MS * 3:
                    break  # far past the limit: more connections only queue
        return out
    finally:
        for server in servers:
            stop(server)


def _post(url: str, key: str, body: dict) -> dict:
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _wait_warm(base: str, key: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            _post(base + "/api/v1/workspace/bench/chat", key, {"message": "warm", "sessionId": "warm"})
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{base} never answered a chat")


def sustained(rows: list[tuple[int, dict[str, float]]]) -> tuple[float, int, int]:
    """(requests/s, connections, peak pg connections per process) of the best level under the p99 limit."""
    fine = [(r["rps"], level, int(r["connections"])) for level, r in rows
            if r["p99_ms"] < P99_LIMIT_MS and not r["errors"]]
    return max(fine) if fine else (0.0, 0, 0)


def report(figures: dict[int, dict[str, list[tuple[int, dict[str, float]]]]], args: argparse.Namespace) -> None:
    print(machine_facts())
    print(f"setup: zero-latency model; wrk -t1 per process, levels {args.levels} total connections, "
          f"{args.duration}s each; sustained = best requests/s with p99 < {P99_LIMIT_MS:.0f} ms and no errors")
    one = figures.get(min(figures))
    for count, kinds in figures.items():
        for kind, rows in kinds.items():
            rps, level, conns = sustained(rows)
            peak = max(int(r["connections"]) for _, r in rows)
            ratio = f"  ({rps / sustained(one[kind])[0]:.2f}x of {min(figures)})" if one and count != min(figures) \
                and sustained(one[kind])[0] else ""
            print(f"{count} process(es)  {kind:5}  sustained {rps:7.1f}/s at c={level}{ratio};"
                  f"  pg connections per process: {conns} there, {peak} at most")


if __name__ == "__main__":
    main()
