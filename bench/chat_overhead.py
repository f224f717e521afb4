"""Benchmark: what the chat pipeline costs on top of the model, at 10 and at 1,000 prior exchanges.

Starts a zero-latency OpenAI-compatible model on loopback (harness/llm_server.py, a real HTTP
server in this process, replying at once with a fixed 20-word text) and `ledgerllm serve` on a temp
DATA_DIR pointed at it (LLM_MODEL=openai/test-model, LLM_CONTEXT_WINDOW=8192, LOG_LEVEL=WARNING).
One workspace with openAiHistory=1000, so the newest 1,000 exchanges of a session are loaded and
fitted into the window on every chat.

History (seeded untimed through the chat API itself, after a warm-up that imports litellm):
* "10 prior": every measured chat gets its own session holding exactly 10 exchanges (one set of
  sessions for sync chat, one for stream-chat), so the prior count is exact for each request.
* "1,000 prior": one session seeded to 1,000 exchanges; the measured chats continue it (each adds
  one), and openAiHistory=1000 caps what is loaded, so every measured chat loads exactly 1,000.

Measured, sequentially from one keep-alive httpx client, the four kinds interleaved request by
request (sync@10, sync@1000, stream@10, stream@1000) so drift hits all of them alike:
1. Sync chat overhead = client response time - model time, where model time is taken at the model
   server for the same request (request line received -> response fully written). All timestamps
   are time.perf_counter() of this process (the model server's handler threads live here too), so
   the overhead also splits into "before the model" (client send -> model received: routing, auth,
   history load, window fit, litellm request) and "after the model" (model done -> client has the
   body: litellm parse, recording the exchange, the response).
   Aims: p50@1000 / p50@10 <= 1.5, and p50 <= 15 ms.
2. stream-chat time-to-first-token overhead = client time to the first `data:` frame with a
   non-empty textResponse - model time to its first frame with text (after it was written).
Then, if py-spy is installed (pip install py-spy into the venv), 10 s of wall-clock samples of every
server thread (py-spy --idle --threads) during more back-to-back 1,000-prior sync chats (not part of
the figures above): where the worker thread that runs the chat's sync code spends its time, per
pipeline stage; how busy the event loop and the projection follower are; the top app functions and
the app lines where the time leaves app code. Progress goes to stderr, the report to stdout.

Run from the repo root:  .venv/bin/python bench/chat_overhead.py [--requests 200] [--profile-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx

from harness.llm_server import LLMServer, ModelHandler, Script
from common import free_port, machine_facts, stop, wait_ready

REPLY = "The quick answer is that the plan holds up well and needs only two small changes before it ships Friday."
assert len(REPLY.split()) == 20
WORKSPACE = "bench"
HISTORY = 1000  # workspace openAiHistory (the maximum): the newest 1,000 exchanges are loaded
SMALL, LARGE = 10, 1000
CONTEXT_WINDOW = 8192
AIM_RATIO, AIM_P50_MS = 1.5, 15.0
WARM_SYNC, WARM_STREAM = 5, 3


# --- the model: LLMServer with a fixed reply and per-request timestamps ----------------------


class _TimedHandler(ModelHandler):
    """Stamps, with this process's perf_counter: the request line received, the first frame with
    text written (streams), the last byte written."""

    def setup(self) -> None:
        super().setup()
        self.server.owner.opened()

    def parse_request(self) -> bool:
        self.t_received = time.perf_counter()
        self.t_first_text: float | None = None
        self.t_written: float | None = None
        self.recorded: Any = None
        return super().parse_request()

    def record(self, raw: bytes) -> Any:
        self.recorded = super().record(raw)
        return self.recorded

    def send_json(self, status: int, payload: Any) -> None:
        super().send_json(status, payload)
        self.t_written = time.perf_counter()

    def write_event(self, payload: dict) -> None:
        super().write_event(payload)
        if self.t_first_text is None and any((c.get("delta") or {}).get("content")
                                             for c in payload.get("choices") or []):
            self.t_first_text = time.perf_counter()

    def write_raw(self, data: bytes) -> None:
        super().write_raw(data)
        self.t_written = time.perf_counter()

    def do_POST(self) -> None:
        super().do_POST()
        body = self.recorded.body if self.recorded is not None else None
        if isinstance(body, dict) and self.t_written is not None:
            self.server.owner.timed(body, self.t_received, self.t_first_text, self.t_written)


class TimedLLMServer(LLMServer):
    """A real OpenAI-compatible server on loopback that always answers REPLY at once and keeps,
    per chat completion, when it arrived and when the answer was out, keyed by the last user text."""

    handler_class = _TimedHandler

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._timings: dict[str, dict[str, Any]] = {}
        self.connections = 0  # connections the model server accepted (does litellm reuse them?)

    def next_script(self, body: dict) -> Script:
        return Script("text", text=REPLY)

    def opened(self) -> None:
        with self._cond:
            self.connections += 1

    def timed(self, body: dict, received: float, first_text: float | None, written: float) -> None:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
        if not isinstance(user, str):
            return
        with self._cond:
            self._timings[user] = {"received": received, "first_text": first_text, "written": written,
                                   "messages": len(messages), "stream": bool(body.get("stream"))}
            self._cond.notify_all()

    def take(self, user_text: str, timeout: float = 10.0) -> dict[str, Any]:
        """The timing of the completion whose last user message was `user_text` (waits for the
        handler thread to file it: the client may have its answer first)."""
        with self._cond:
            if not self._cond.wait_for(lambda: user_text in self._timings, timeout):
                raise RuntimeError(f"the model never saw a chat ending in {user_text!r}")
            return self._timings.pop(user_text)

    def forget(self) -> None:
        with self._cond:
            self._timings.clear()
            self.connections = 0
        with self._lock:
            self._requests.clear()


# --- helpers -----------------------------------------------------------------------------------



def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(server_pid: int) -> float:
    """CPU seconds of this process (client and model server) and of the server under test."""
    me = os.times()
    return me.user + me.system + cpu_seconds(server_pid)


def wait_quiet(pid: int, limit: float = 60.0) -> float:
    """Wait until the server uses < 5 % of a core over 0.5 s (start-up model loads done); its share."""
    deadline = time.monotonic() + limit
    while True:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        share = (cpu_seconds(pid) - before) / 0.5
        if share < 0.05 or time.monotonic() > deadline:
            return share



# --- the client ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, client: httpx.Client, llm: TimedLLMServer) -> None:
        self.client = client
        self.llm = llm
        self.counter = 0

    def message(self, tag: str) -> str:
        self.counter += 1
        return f"[{tag} #{self.counter}] What should we change about step {self.counter % 97} of the plan, and why?"

    def chat(self, session: str, tag: str) -> dict[str, Any]:
        text = self.message(tag)
        t0 = time.perf_counter()
        r = self.client.post(f"/api/v1/workspace/{WORKSPACE}/chat",
                             json={"message": text, "mode": "chat", "sessionId": session})
        t1 = time.perf_counter()
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
        if r.status_code != 200 or not isinstance(body, dict) or body.get("textResponse") != REPLY:
            raise RuntimeError(f"chat in session {session} failed: HTTP {r.status_code} {str(body)[:500]}")
        m = self.llm.take(text)
        return {"client": (t1 - t0) * 1000, "model": (m["written"] - m["received"]) * 1000,
                "before": (m["received"] - t0) * 1000, "after": (t1 - m["written"]) * 1000,
                "messages": m["messages"]}

    def stream(self, session: str, tag: str) -> dict[str, Any]:
        text = self.message(tag)
        first = None
        frames: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        with self.client.stream("POST", f"/api/v1/workspace/{WORKSPACE}/stream-chat",
                                json={"message": text, "mode": "chat", "sessionId": session}) as r:
            if r.status_code != 200:
                raise RuntimeError(f"stream-chat in session {session} failed: HTTP {r.status_code} {r.read()[:500]!r}")
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                frame = json.loads(line[6:])
                if first is None and frame.get("textResponse"):
                    first = time.perf_counter()
                frames.append(frame)
        t1 = time.perf_counter()
        got = "".join(f.get("textResponse") or "" for f in frames if f.get("type") == "textResponseChunk")
        if first is None or got != REPLY or frames[-1].get("type") != "finalizeResponseStream":
            raise RuntimeError(f"stream-chat in session {session} went wrong: {frames[-1] if frames else 'no frames'}")
        m = self.llm.take(text)
        return {"ttft": (first - t0) * 1000, "model_ttft": (m["first_text"] - m["received"]) * 1000,
                "client": (t1 - t0) * 1000, "model": (m["written"] - m["received"]) * 1000,
                "messages": m["messages"]}

    def history_count(self, session: str) -> int:
        r = self.client.get(f"/api/v1/workspace/{WORKSPACE}/chats", params={"apiSessionId": session, "limit": 1000})
        r.raise_for_status()
        return sum(1 for entry in r.json()["history"] if entry.get("role") == "user")  # one per exchange

    def floor(self, path: str, n: int) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.client.get(path).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)


# --- py-spy -------------------------------------------------------------------------------------

WORKER = "AnyIO worker thread"  # anyio.to_thread runs the chat's sync code (prepare, answer) here
LOOP = "MainThread"  # uvicorn's event loop (uvloop): HTTP, routing, middleware, auth, responses
FOLLOWER = "ledgerllm-follower"
WAITS = {"Condition.wait", "Event.wait", "Queue.get", "Runner.run", "select", "_worker", "sleep"}

# Where the worker thread is, by its stack (path, function) from the root; the first match wins.
STAGES = [
    ("litellm call (on a helper thread; includes starting it)",
     lambda st: any(p.endswith("/infrastructure/completions.py") or "/infrastructure/llm_" in p or "/litellm/" in p for p, _ in st)),
    ("history window fit (tiktoken counts in context_window.fit)",
     lambda st: any(p.endswith("/application/context_window.py") for p, _ in st)),
    ("history load (SQL read + JSON decode)", lambda st: any(f == "load_history" for _, f in st)),
    ("record: catch the chats view up (ProjectionRunner.ensure)",
     lambda st: any(f == "record" for _, f in st) and any(f == "ProjectionRunner.ensure" for _, f in st)),
    ("record: append the event (ids, SQLite commit)", lambda st: any(f == "record" for _, f in st)),
    ("other app code (prepare: workspace, settings, llm config; answer)", lambda st: any(app_path(p) for p, _ in st)),
    ("idle: the request is in the event loop, on the wire, at the model or the client", lambda st: True),
]


def app_path(path: str) -> bool:
    """Our code, not the venv's; api/cli.py is left out: it is the root of the event loop's stack."""
    return (path.startswith(str(REPO) + "/") and "/.venv/" not in path and "/site-packages/" not in path
            and not path.endswith("/api/cli.py"))


def short(path: str) -> str:
    return path[len(str(REPO)) + 1:] if path.startswith(str(REPO) + "/") else path


Frame = tuple[str, str, int]  # path, function, line


def parse_raw(text: str) -> list[tuple[str, list[Frame], int]]:
    """py-spy raw output with --threads: `thread (tid): name;func (path:line);... count`, root first."""
    stacks = []
    for line in text.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack_text.startswith("thread ("):
            continue
        head, _, rest = stack_text.partition(";")
        thread = re.sub(r"_\d+$", "", head.partition("): ")[2])  # litellm-logging_7 -> litellm-logging
        frames = []
        for frame in rest.split(";") if rest else []:
            name, _, where = frame.rpartition(" (")
            path, _, lineno = where.rstrip(")").rpartition(":")
            frames.append((path, name, int(lineno) if lineno.isdigit() else 0))
        stacks.append((thread, frames, int(count)))
    return stacks


def busy(frames: list[Frame]) -> bool:
    return bool(frames) and frames[-1][1] not in WAITS


def report_profile(stacks: list[tuple[str, list[Frame], int]], spent: float, chats: int, rate: int) -> None:
    ticks = sum(c for thread, _, c in stacks if thread == LOOP)  # every thread is sampled on every tick
    if not ticks:
        print("py-spy: no samples of the event loop thread")
        return
    per_chat = 1000 * spent / max(1, chats)
    print(f"py-spy --idle --threads at {rate} Hz: {ticks} ticks of the server during back-to-back sync chats at "
          f"1,000 prior ({chats} chats in {spent:.1f} s, {per_chat:.1f} ms each incl. client and model; "
          f"sampling slows the server, so read shares, not absolute ms; not part of the figures above)")

    def row(count: int, text: str) -> str:
        return f"    {100 * count / ticks:5.1f}% {per_chat * count / ticks:6.1f} ms  {text}"

    stages: Counter[str] = Counter()
    functions: Counter[tuple[str, str]] = Counter()
    lines: Counter[tuple[str, int, str]] = Counter()
    loop_busy = follower_busy = 0
    for thread, frames, count in stacks:
        st = [(p, f) for p, f, _ in frames]
        if thread == WORKER:
            stages[next(label for label, test in STAGES if test(st))] += count
        elif thread == LOOP:
            loop_busy += count if busy(frames) else 0
        elif thread == FOLLOWER:
            follower_busy += count if busy(frames) else 0
        app = [(p, f, n) for p, f, n in frames if app_path(p)]
        # On the request path: the worker in app code (its waits too: the request waits there), the
        # event loop when it is not idling in uvloop.
        if not ((thread == WORKER and app) or (thread == LOOP and busy(frames))):
            continue
        for key in {(p, f) for p, f, _ in app}:
            functions[key] += count
        if app:
            p, f, n = app[-1]
            lines[(p, n, f)] += count
    print("  the worker thread (anyio.to_thread: the chat's sync code), share of wall time:")
    for label, _ in STAGES:
        print(row(stages[label], label))
    print("  other threads, busy share of wall time:")
    print(row(loop_busy, "event-loop thread (uvicorn/Litestar: HTTP, middleware, auth, routing, JSON)"))
    print(row(follower_busy, "projection follower thread (polls the store, catches views up; takes the GIL)"))
    print("  top 10 app functions on the request path (worker + event-loop threads, inclusive, waits included):")
    for (p, f), c in functions.most_common(10):
        print(row(c, f"{short(p)}  {f}"))
    print("  top 10 app lines where the request path leaves app code (innermost app frame, incl. the libraries "
          "it calls):")
    for (p, n, f), c in lines.most_common(10):
        print(row(c, f"{short(p)}:{n}  {f}"))


def profile(bench: Bench, pid: int, seconds: float, tmp: Path) -> None:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not py_spy:
        print("py-spy: not installed (.venv/bin/pip install py-spy); profile skipped")
        return
    out = tmp / "py-spy.txt"
    rate = 100
    # --idle --threads: every thread on every tick, waits included, so shares are of wall time. (CPU-only
    # sampling would hide the waits, and py-spy counts threads blocked in C, e.g. pool workers on
    # their queue, as running anyway.)
    spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                            "--rate", str(rate), "--idle", "--threads", "--format", "raw", "--full-filenames",
                            "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        time.sleep(0.3)  # attach
        chats = 0
        started = time.perf_counter()
        while spy.poll() is None and time.perf_counter() - started < seconds + 30:
            bench.chat("s1000", "profile")
            chats += 1
        spent = time.perf_counter() - started
        _, err = spy.communicate(timeout=30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if spy.returncode != 0 or not out.exists():
        print(f"py-spy: failed (exit {spy.returncode}): {(err or '').strip()[-400:]}")
        return
    report_profile(parse_raw(out.read_text()), spent, chats, rate)


# --- main ------------------------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f}{pct(values, 99):7.1f}{statistics.fmean(values):7.1f}"


def progress(text: str) -> None:
    sys.stdout.flush()  # keep stdout and stderr in order when both go to one file
    print(f"[chat_overhead] {text}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="measured chats per kind and history setting")
    parser.add_argument("--profile-seconds", type=float, default=10, help="py-spy sampling time (0: no profile)")
    args = parser.parse_args()
    if args.requests < 1:
        sys.exit("--requests must be at least 1")
    ledgerllm = shutil.which("ledgerllm", path=str(Path(sys.executable).parent)) or shutil.which("ledgerllm")
    if not ledgerllm:
        sys.exit("ledgerllm console script not found; run with the project's venv python")

    run_started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="ledgerllm-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    llm: TimedLLMServer | None = None
    server = None
    client = None
    try:
        llm = TimedLLMServer().start()
        env = {**os.environ, "DATA_DIR": str(tmp / "data"), "LOG_LEVEL": "WARNING",
               "LLM_MODEL": "openai/test-model", "LLM_API_BASE": llm.base_url, "LLM_API_KEY": "sk-bench",
               "LLM_CONTEXT_WINDOW": str(CONTEXT_WINDOW)}
        with log.open("w") as log_file:
            server = subprocess.Popen([ledgerllm, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                      env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(base, server, log)
        key = subprocess.run([ledgerllm, "api-keys", "create", "--name", "bench"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        client.post("/api/v1/workspace/new", json={"name": WORKSPACE}).raise_for_status()
        client.post(f"/api/v1/workspace/{WORKSPACE}/update", json={"openAiHistory": HISTORY}).raise_for_status()
        got = client.get(f"/api/v1/workspace/{WORKSPACE}").json()["workspace"][0]["openAiHistory"]
        if got != HISTORY:
            sys.exit(f"workspace openAiHistory is {got}, wanted {HISTORY}")
        bench = Bench(client, llm)
        n = args.requests

        # Warm-up (the first chat imports litellm), then the history, untimed.
        progress("warming up (the first chat imports litellm)")
        t = time.perf_counter()
        for _ in range(WARM_SYNC):
            bench.chat("warm", "warm")
        for _ in range(WARM_STREAM):
            bench.stream("warm", "warm")
        warm_s = time.perf_counter() - t
        progress(f"seeding {2 * n} sessions x {SMALL} and 1 x {LARGE} exchanges (untimed; a few minutes)")
        t = time.perf_counter()
        small = {kind: [f"s10-{kind}-{i:04d}" for i in range(n)] for kind in ("sync", "stream")}
        for sessions in small.values():
            for session in sessions:
                for _ in range(SMALL):
                    bench.chat(session, "seed")
        for _ in range(LARGE):
            bench.chat("s1000", "seed")
        seed_s = time.perf_counter() - t
        wrong = [(s, c) for s in small["sync"] + small["stream"] if (c := bench.history_count(s)) != SMALL]
        big = bench.history_count("s1000")
        if wrong or big != LARGE:
            sys.exit(f"seeded history is off: s1000 has {big}; wrong small sessions: {wrong[:5]}")
        llm.forget()
        idle = wait_quiet(server.pid)
        ping = bench.floor("/api/ping", 50)
        auth = bench.floor("/api/v1/auth", 50)

        # Measured: interleaved, one of each kind per round.
        progress(f"measuring {4 * n} requests")
        res: dict[str, list[dict[str, Any]]] = {"sync10": [], "sync1000": [], "stream10": [], "stream1000": []}
        t = time.perf_counter()
        busy0, own0, load0 = machine_busy_seconds(), own_cpu_seconds(server.pid), os.getloadavg()[0]
        for i in range(n):
            res["sync10"].append(bench.chat(small["sync"][i], "sync10"))
            res["sync1000"].append(bench.chat("s1000", "sync1000"))
            res["stream10"].append(bench.stream(small["stream"][i], "stream10"))
            res["stream1000"].append(bench.stream("s1000", "stream1000"))
        measure_s = time.perf_counter() - t
        others = (machine_busy_seconds() - busy0 - (own_cpu_seconds(server.pid) - own0)) / measure_s
        load1 = os.getloadavg()[0]
        connections = llm.connections
        for kind in ("sync10", "stream10"):  # system + 10 exchanges + the question: all of it reached the model
            sent = {r["messages"] for r in res[kind]}
            if sent != {2 * SMALL + 2}:
                sys.exit(f"{kind}: the model got {sorted(sent)} messages, wanted {2 * SMALL + 2}")

        print(machine_facts())
        print(f"setup:   ledgerllm serve (1 worker, SQLite, LOG_LEVEL=WARNING); model: loopback OpenAI-compatible "
              f"server in this process, zero latency, fixed {len(REPLY.split())}-word reply; "
              f"LLM_CONTEXT_WINDOW={CONTEXT_WINDOW}; workspace openAiHistory={HISTORY}")
        print("history: 10 prior = a fresh session with exactly 10 exchanges per measured chat; 1,000 prior = one "
              "session seeded to 1,000 that the measured chats continue (1,000 loaded each time)")
        print(f"phases:  warm-up {WARM_SYNC} sync + {WARM_STREAM} stream chats {warm_s:.1f} s; seeding "
              f"{2 * n} sessions x {SMALL} + 1 x {LARGE} exchanges {seed_s:.1f} s (untimed); measured "
              f"{4 * n} requests {measure_s:.1f} s; server CPU before measuring {100 * idle:.0f}% of a core")
        print(f"load:    while measuring, other processes kept {max(0.0, others):.2f} of {os.cpu_count()} cores busy "
              f"(load average {load0:.1f} -> {load1:.1f}); figures are only clean near 0")
        print(f"model:   litellm opened {connections} connection(s) to the model for the {4 * n} measured completions")
        print(f"floor:   same client, p50: GET /api/ping {ping:.2f} ms, GET /api/v1/auth {auth:.2f} ms")
        print()
        print(f"sync chat, {n} requests per row; overhead = client time - model time (model server: "
              f"request received -> response written)")
        print(f"{'prior':>7} | {'client ms':^21} | {'model ms':^21} | {'overhead ms':^21} | {'p50 ms':^15} | msgs")
        print(f"{'':>7} | {'p50    p99   mean':>21} | {'p50    p99   mean':>21} | {'p50    p99   mean':>21} "
              f"| {'before  after':>15} | to model")
        p50 = {}
        for prior, kind in ((SMALL, "sync10"), (LARGE, "sync1000")):
            rows = res[kind]
            over = [r["client"] - r["model"] for r in rows]
            p50[prior] = statistics.median(over)
            print(f"{prior:>7,} | {summary([r['client'] for r in rows])} | {summary([r['model'] for r in rows])} | "
                  f"{summary(over)} | {statistics.median([r['before'] for r in rows]):7.1f}"
                  f"{statistics.median([r['after'] for r in rows]):8.1f} | "
                  f"{statistics.fmean([r['messages'] for r in rows]):.0f}")
        ratio = p50[LARGE] / p50[SMALL]
        print("(before = client send -> model received; after = model done -> client has the body; "
              "msgs = system + history + question after the window fit)")
        print(f"ratio p50 overhead @1,000 / @10: {ratio:.2f}  (aim <= {AIM_RATIO}: "
              f"{'met' if ratio <= AIM_RATIO else 'NOT met'})")
        print("p50 overhead <= 15 ms: " + ", ".join(
            f"@{prior:,} {p50[prior]:.1f} ms {'met' if p50[prior] <= AIM_P50_MS else 'NOT met'}"
            for prior in (SMALL, LARGE)))
        print()
        print(f"stream-chat, {n} requests per row; TTFT overhead = client time to the first frame with text - "
              f"model time to its first frame with text")
        print(f"{'prior':>7} | {'client TTFT ms':^14} | {'model TTFT ms':^14} | {'TTFT overhead ms':^21} | "
              f"{'whole stream p50 ms':^19}")
        print(f"{'':>7} | {'p50    p99':>14} | {'p50    p99':>14} | {'p50    p99   mean':>21} | "
              f"{'client  overhead':>19}")
        for prior, kind in ((SMALL, "stream10"), (LARGE, "stream1000")):
            rows = res[kind]
            ttft = [r["ttft"] for r in rows]
            model = [r["model_ttft"] for r in rows]
            over = [r["ttft"] - r["model_ttft"] for r in rows]
            print(f"{prior:>7,} | {statistics.median(ttft):7.1f}{pct(ttft, 99):7.1f} | "
                  f"{statistics.median(model):7.2f}{pct(model, 99):7.2f} | {summary(over)} | "
                  f"{statistics.median([r['client'] for r in rows]):8.1f}"
                  f"{statistics.median([r['client'] - r['model'] for r in rows]):10.1f}")
        print()
        if args.profile_seconds > 0:
            progress(f"profiling the server with py-spy for {args.profile_seconds:g} s")
            profile(bench, server.pid, args.profile_seconds, tmp)
            print()
        print(f"total run time: {time.perf_counter() - run_started:.0f} s")
        extra = f" --profile-seconds {args.profile_seconds:g}" if args.profile_seconds != 10 else ""
        print(f"re-run: .venv/bin/python bench/chat_overhead.py --requests {n}{extra}")
    except subprocess.CalledProcessError as err:
        sys.exit(f"command failed: {' '.join(map(str, err.cmd))}\n{err.stdout}{err.stderr}")
    except (RuntimeError, httpx.HTTPError) as err:
        tail = log.read_text()[-3000:] if log.exists() else ""
        sys.exit(f"benchmark failed: {err}\nserver log (tail):\n{tail}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        if client is not None:
            client.close()
        if server is not None:
            stop(server)
        if llm is not None:
            llm.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
