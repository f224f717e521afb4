"""A `ledgerllm serve` process for a benchmark (own DATA_DIR, free port) and a keep-alive
HTTP client for it that fails loudly on any non-2xx answer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from common import free_port

WORKSPACE = "bench"


# --- server ---------------------------------------------------------------------------------

class Server:
    """`ledgerllm serve` on a free port and its own DATA_DIR; `stop()` is idempotent."""

    def __init__(self, ledgerllm: str, data_dir: Path, log: Path, **env: str) -> None:
        self.ledgerllm = ledgerllm
        self.data_dir = data_dir
        self.log = log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # LOG_LEVEL=WARNING: the per-request INFO access line would otherwise be part of what we measure.
        # Embedded mode (SQLite under DATA_DIR), whatever this shell points at: the cache pre-fill
        # writes DATA_DIR's SQLite vectors store.
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HOST", "PORT")}
        self.env.update(DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", **env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        with self.log.open("w") as log_file:
            self.proc = subprocess.Popen(
                [self.ledgerllm, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.base + "/api/ping", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        state = f"exited with code {self.proc.returncode}" if self.proc.poll() is not None else "no answer"
        raise BenchError(f"server not ready on /api/ping ({state}); its log:\n{self.log_text()}")

    def api_key(self) -> str:
        out = subprocess.run([self.ledgerllm, "api-keys", "create", "--name", "bench"], env=self.env,
                             capture_output=True, text=True, check=False)
        if out.returncode != 0 or not out.stdout.strip():
            raise BenchError(f"ledgerllm api-keys create failed ({out.returncode}):\n{out.stdout}{out.stderr}")
        return out.stdout.strip()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[union-attr]
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return float("nan")

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: takes anything it started too
            proc.wait()


class BenchError(Exception):
    pass


class Api:
    """One keep-alive HTTP client; every call fails loudly on a non-2xx answer."""

    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key}"},
                                   timeout=httpx.Timeout(600.0, connect=10.0))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.client.request(method, path, json=body)
        if not 200 <= resp.status_code < 300:
            raise BenchError(f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}\n"
                             f"server log (tail):\n{self.server.log_text()}")
        return resp.json()

    def upload(self, title: str, text: str) -> None:
        out = self.call("POST", "/api/v1/document/raw-text",
                        {"textContent": text, "metadata": {"title": title}, "addToWorkspaces": WORKSPACE})
        if out.get("failedToEmbed") or not out.get("documents"):
            raise BenchError(f"raw-text {title}: failedToEmbed={out.get('failedToEmbed')} "
                             f"errors={out.get('embeddingErrors')}")

    def vector_count(self) -> int:
        return int(self.call("GET", "/api/v1/system/vector-count")["vectorCount"])

    def close(self) -> None:
        self.client.close()


def start_with_workspace(server: Server) -> Api:
    server.start()
    api = Api(server, server.api_key())
    slug = api.call("POST", "/api/v1/workspace/new", {"name": WORKSPACE})["workspace"]["slug"]
    if slug != WORKSPACE:
        raise BenchError(f"workspace slug is {slug!r}, expected {WORKSPACE!r}")
    return api
