"""What the benchmarks share: a free port, waiting for and stopping a `ledgerllm serve`
process, and one line describing the machine and the revision measured.

Each benchmark runs as `python bench/NAME.py`, so this directory is on sys.path."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_ready(base: str, server: subprocess.Popen, log: Path, timeout: float = 60.0, path: str = "/api/ping") -> None:
    """Return once the server answers `path` (/api/ping; /api/health/ready: the model warm-up is
    done too); exit with its log if it dies or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            if http_status(base + path) == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    state = f"exited with code {server.returncode}" if server.poll() is not None else f"no answer in {timeout:.0f}s"
    sys.exit(f"server not ready on /api/ping ({state}); its log:\n{log.read_text()}")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL to its process group (its own session: uvicorn's workers too)."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _cpu_and_memory() -> tuple[str, str]:
    cpu = mem = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return cpu, mem


def machine_facts(versions: str = "") -> str:
    """`machine: nproc=.. cpu=.. mem=.. python=.. [versions] platform ledgerllm@rev[ (modified)]`."""
    cpu, mem = _cpu_and_memory()
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    extra = f"{versions}  " if versions else ""
    return (f"machine: nproc={os.cpu_count()}  cpu={cpu}  mem={mem}  python={platform.python_version()}  "
            f"{extra}{platform.platform()}  ledgerllm@{rev}{' (modified)' if dirty else ''}")
