"""A real `ledgerllm serve` process on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from harness.servers import free_port
from tests.support.app import LEDGERLLM, Backend

# Generous: on a loaded machine (the suite must pass with CPU hogs beside it) a request can
# wait seconds for a core; a test fails on a wrong answer, not on a slow one.
REQUEST_TIMEOUT = 120
T = TypeVar("T")


class ServerProcess:
    def __init__(self, backend: Backend, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [LEDGERLLM, "serve", "--port", str(self.port), *args],
            env=backend.env(HOST="127.0.0.1", **(env or {})), stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/api/ping", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout}s:\n{self.log_path.read_text()}")

    def wait_warm(self, timeout: float = 300) -> dict:
        """Wait until the models the server loads at start-up are loaded (readiness names
        none as loading); return the readiness body then (it may be not ready for other reasons)."""
        def warm() -> dict | None:
            body = json.loads(get(self.url + "/api/health/ready")[1])
            return None if any(r.endswith(" loading") for r in body["reasons"]) else body

        return wait_until(warm, "the server's models to load", timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def wait_until(condition: Callable[[], T | None], what: str, timeout: float = REQUEST_TIMEOUT,
               every: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)
    return value


@contextmanager
def running_server(backend: Backend, log_path: Path, *args: str,
                   env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    server = ServerProcess(backend, log_path, *args, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def get(url: str, key: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def send(method: str, url: str, key: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


__all__ = ["ServerProcess", "running_server", "get", "send", "wait_until", "os"]
