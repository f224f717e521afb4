"""Decompression bombs against a real `ledgerllm serve`: time to refusal, memory, and whether
the server keeps answering meanwhile.

For each hostile document (built here, from harness/bombs.py) it sends the bomb, times
the answer, and keeps sending it back to back until --load-seconds have passed since the first
(a bomb that takes longer is sent once). Meanwhile it pings `GET /api/ping` every 10 ms from
another process and samples the resident memory of the server process and of its child
processes (the parse workers) every 50 ms. It prints, per bomb: the first answer's status and
time, how many were sent, the server's peak RSS above its level before the first, the largest
worker RSS seen, and ping p50/p99/max during the bomb traffic, next to ping p50/p99 measured
idle in the same run. A normal small DOCX upload is timed too (p50 of 20), which shows what
parsing in a separate process costs a document that is not a bomb.

    .venv/bin/python bench/parse_bombs.py [--only NAME ...] [--load-seconds 10] [--timeout 900]
                                          [--env PARSE_WORKERS=1 ...]

A bomb the server has not answered within --timeout is reported as such; the bench then waits
for the server to go idle before the next one.
"""

from __future__ import annotations

import argparse
import base64
import io
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from common import REPO, free_port, machine_facts, stop, wait_ready

sys.path.insert(0, str(REPO))
from harness.bombs import docx_bomb, pdf_flate_bomb, pdf_page_flood  # noqa: E402
from harness.llm_server import LLMServer  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
LEDGERLLM = str(Path(sys.executable).parent / "ledgerllm")
WORKSPACE = "bombs"


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


# --- memory of the server and its children, from /proc ---


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Sampler:
    pid: int
    server_peak: float = 0.0
    worker_peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.server_peak = max(self.server_peak, rss_mb(self.pid))
            for child in children(self.pid):
                self.worker_peak = max(self.worker_peak, rss_mb(child))
            self._stop.wait(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- pings ---


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _ping_child(base: str, stop: Any, started: Any, out: Any, count: int | None) -> None:
    """Ping every 10 ms until `stop` is set (or `count` pings); each latency in ms into `out`
    (a ping that fails counts as its timeout). Runs in its own process, so the bench's own
    threads (the sender, the sampler) never delay a ping."""
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get("/api/ping")
        started.set()
        while not stop.is_set() and (count is None or len(latencies) < count):
            t = time.perf_counter()
            try:
                client.get("/api/ping").raise_for_status()
            except httpx.HTTPError:
                pass
            latencies.append((time.perf_counter() - t) * 1000)
            time.sleep(0.01)
    out.put(latencies)


class Pinger:
    def __init__(self, base: str, count: int | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop, started, self._out = ctx.Event(), ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(target=_ping_child, args=(base, self._stop, started, self._out, count), daemon=True)
        self._proc.start()
        if not started.wait(120):
            sys.exit("the pinger did not start")

    def result(self, stop: bool = True) -> list[float]:
        if stop:
            self._stop.set()
        latencies = self._out.get(timeout=600)
        self._proc.join()
        return latencies


def idle_pings(base: str, count: int) -> list[float]:
    return Pinger(base, count).result(stop=False)


# --- the run ---


@dataclass
class Bomb:
    name: str
    route: str  # "upload" or "chat"
    filename: str
    data: bytes


def build_bombs(only: set[str]) -> list[Bomb]:
    makers: list[tuple[str, str, str, Callable[[], bytes]]] = [
        ("docx-240MiB", "upload", "bomb.docx", lambda: docx_bomb(240 << 20)),
        ("docx-lying-header", "upload", "liar.docx", lambda: docx_bomb(240 << 20, lie=True)),
        ("pdf-flate-64MiB", "upload", "flate.pdf", lambda: pdf_flate_bomb(64 << 20)),
        ("pdf-50k-pages", "upload", "pages.pdf", lambda: pdf_page_flood(50_000)),
        # under the byte budget, and tens of CPU seconds of python-docx: the CPU cap's case
        ("docx-16MiB-cpu", "upload", "slow.docx", lambda: docx_bomb(16 << 20)),
        ("docx-59MiB-chat", "chat", "attachment.docx", lambda: docx_bomb(59 << 20)),
    ]
    return [Bomb(name, route, filename, make()) for name, route, filename, make in makers
            if not only or name in only]


class Setup:
    """An owner key from the CLI; a default user (multi-user mode) who belongs to one workspace."""

    def __init__(self, base: str, env: dict[str, str], ledgerllm: str) -> None:
        owner = subprocess.run([ledgerllm, "api-keys", "create", "--name", "bench"], env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {owner}"}, timeout=60) as c:
            c.post("/api/system/enable-multi-user",
                   json={"username": "boss", "password": "boss-password"}).raise_for_status()
            user = c.post("/api/v1/admin/users/new",
                          json={"username": "alice", "password": "alice-password", "role": "default"}).json()["user"]
            self.default = c.post("/api/admin/generate-api-key", json={"userId": user["id"]}).json()["apiKey"]["secret"]
            c.post("/api/v1/workspace/new", json={"name": WORKSPACE}).raise_for_status()
            c.post(f"/api/v1/admin/workspaces/{WORKSPACE}/manage-users",
                   json={"userIds": [user["id"]]}).raise_for_status()
        self.owner = owner


def send(base: str, setup: Setup, bomb: Bomb, timeout: float) -> tuple[int | str, str]:
    try:
        if bomb.route == "upload":
            r = httpx.post(base + "/api/v1/document/upload", headers={"Authorization": f"Bearer {setup.owner}"},
                           files={"file": (bomb.filename, bomb.data)}, timeout=timeout)
        else:
            attachment = {"name": bomb.filename, "mime": "application/anythingllm-document",
                          "contentString": base64.b64encode(bomb.data).decode()}
            r = httpx.post(base + f"/api/v1/workspace/{WORKSPACE}/chat", timeout=timeout,
                           headers={"Authorization": f"Bearer {setup.default}"},
                           json={"message": "summarise the attachment", "mode": "chat", "attachments": [attachment]})
        return r.status_code, r.text[:300]
    except httpx.TimeoutException:
        return "timeout", f"no answer in {timeout:.0f} s"


def wait_idle(pid: int, timeout: float = 1800) -> None:
    """Until the server and its children use under 10% of a core over a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid, *children(pid)]
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(1)
        if sum(cpu_seconds(p) for p in pids) - before < 0.1:
            return


def measure(base: str, pid: int, setup: Setup, bomb: Bomb, timeout: float, load_seconds: float) -> dict[str, Any]:
    baseline = rss_mb(pid)
    result: dict[str, Any] = {}

    def traffic() -> None:
        t = time.perf_counter()
        result["status"], result["body"] = send(base, setup, bomb, timeout)
        result["seconds"] = time.perf_counter() - t
        result["sent"] = 1
        while time.perf_counter() - t < load_seconds and result["status"] != "timeout":
            send(base, setup, bomb, timeout)
            result["sent"] += 1

    pinger = Pinger(base)
    with Sampler(pid) as sampler:
        traffic()
    pings = pinger.result()
    result.update(server_mb=sampler.server_peak - baseline, worker_mb=sampler.worker_peak, pings=pings)
    return result


def normal_upload_ms(base: str, setup: Setup, n: int = 20) -> float:
    data = normal_docx()
    times = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {setup.owner}"}, timeout=60) as client:
        for i in range(n + 2):
            t = time.perf_counter()
            r = client.post("/api/v1/document/upload", files={"file": (f"normal-{i}.docx", data)})
            if r.status_code != 200:
                sys.exit(f"a normal DOCX upload failed: {r.status_code} {r.text[:200]}")
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times[2:])


def sandbox_overhead(data: bytes, rounds: int = 30) -> str:
    """p50 of parsing one small DOCX in this process vs through a warm ParserPool, alternating."""
    from infrastructure import parsers

    if not Path(parsers.__file__).with_name("parse_pool.py").exists():
        return "no sandbox in this revision"
    from infrastructure.parse_pool import ParserPool, SandboxSettings

    pool = ParserPool(SandboxSettings(workers=1))
    try:
        pool.parse("warm.docx", data)
        inline, sandboxed = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            parsers.parse("n.docx", data)
            inline.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            pool.parse("n.docx", data)
            sandboxed.append((time.perf_counter() - t) * 1000)
    finally:
        pool.close()
    a, b = statistics.median(inline), statistics.median(sandboxed)
    return f"in process p50 {a:.1f} ms, in a warm worker p50 {b:.1f} ms (+{b - a:.1f} ms)"


def normal_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("A normal paragraph of a normal document. " * 20)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


HEADER = (f"{'bomb':<19} {'size':>7} {'route':<6} {'status':>7} {'answer s':>9} {'sent':>4} {'server +MB':>10} "
          f"{'worker MB':>9} {'pings':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")


def row(bomb: Bomb, r: dict[str, Any]) -> str:
    pings = r["pings"]
    return (f"{bomb.name:<19} {len(bomb.data) // 1024:>5}KB {bomb.route:<6} {r['status']!s:>7} {r['seconds']:>9.2f} "
            f"{r['sent']:>4} {r['server_mb']:>10.0f} {r['worker_mb']:>9.0f} {len(pings):>5} "
            f"{percentile(pings, .5):>7.1f} {percentile(pings, .99):>7.1f} {max(pings, default=float('nan')):>7.1f}")


def report(results: list[tuple[Bomb, dict[str, Any]]], idle: list[float], normal_ms: float) -> None:
    print(f"\nidle /api/ping: p50 {percentile(idle, .5):.1f} ms  p99 {percentile(idle, .99):.1f} ms  "
          f"max {max(idle):.1f} ms  (n={len(idle)})")
    print(f"normal DOCX upload (parse, store; 2 KB file): p50 {normal_ms:.0f} ms")
    print(f"parsing that DOCX: {sandbox_overhead(normal_docx())}")
    print(HEADER)
    for bomb, r in results:
        print(row(bomb, r))
    print("\nanswers:")
    for bomb, r in results:
        print(f"  {bomb.name}: {r['body']}")


def start_server(args: argparse.Namespace, llm: LLMServer) -> tuple[subprocess.Popen, str, dict[str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="ledgerllm-bombs-"))
    port, log = free_port(), tmp / "server.log"
    env = {**os.environ, "DATA_DIR": str(tmp / "data"), "LOG_LEVEL": "WARNING", "LLM_MODEL": "openai/bench",
           "LLM_API_BASE": llm.base_url, "LLM_API_KEY": "sk-bench", "HF_HUB_OFFLINE": "1",
           **dict(item.split("=", 1) for item in args.env)}
    with log.open("w") as log_file:
        server = subprocess.Popen([LEDGERLLM, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server, log)
    return server, base, env


def run(base: str, server: subprocess.Popen, env: dict[str, str], bombs: list[Bomb], args: argparse.Namespace) -> None:
    setup = Setup(base, env, LEDGERLLM)
    progress("waiting for the server to go idle (it loads the embedding model at start)")
    wait_idle(server.pid)
    normal_ms = normal_upload_ms(base, setup)
    idle = idle_pings(base, 300)
    results = []
    for bomb in bombs:
        progress(f"{bomb.name} ({len(bomb.data) // 1024} KB) via {bomb.route}")
        results.append((bomb, measure(base, server.pid, setup, bomb, args.timeout, args.load_seconds)))
        progress(row(*results[-1]))
        wait_idle(server.pid)
    idle += idle_pings(base, 300)
    report(results, idle, normal_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=[], help="bomb names to run (default: all)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each answer")
    parser.add_argument("--load-seconds", type=float, default=10, help="keep sending each bomb this long")
    parser.add_argument("--env", nargs="*", default=[], help="extra server settings, NAME=VALUE")
    args = parser.parse_args()
    print(machine_facts())
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    progress("building the bombs")
    bombs = build_bombs(set(args.only))
    llm = LLMServer().start()
    server = None
    try:
        server, base, env = start_server(args, llm)
        run(base, server, env, bombs, args)
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    finally:
        if server is not None:
            stop(server)
        llm.stop()


if __name__ == "__main__":
    main()
