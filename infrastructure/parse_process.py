"""One parse worker process seen from the server: started with no secrets in its environment,
spoken to in length-prefixed frames over its stdin and stdout, with a deadline on every read
and write (poll on non-blocking pipes), and killed without ceremony (it holds no state)."""

from __future__ import annotations

import os
import select
import subprocess
import time

from infrastructure.parse_worker import READY

ENV = {"LC_ALL": "C.UTF-8"}  # nothing of the server's environment (keys, database URLs)


class Lost(Exception):
    """The worker stopped answering: it exited (`returncode`) or ran out of time."""

    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode


class WorkerProcess:
    """One worker process and the framed pipe protocol, with a deadline on every read."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                     env=ENV, cwd="/", start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        self.ready = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def handshake(self, deadline: float) -> None:
        if not self.ready:
            if self._read_frame(deadline) != READY:
                raise Lost(self._returncode())
            self.ready = True

    def send(self, payload: bytes, deadline: float) -> None:
        self._write(len(payload).to_bytes(4, "big"), deadline)
        self._write(payload, deadline)

    def receive(self, deadline: float) -> bytes:
        return self._read_frame(deadline)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self._in, select.POLLOUT, deadline)
            try:
                view = view[os.write(self._in, view):]
            except BlockingIOError:
                continue
            except OSError:  # EPIPE: the worker is gone
                raise Lost(self._returncode()) from None

    def _read_frame(self, deadline: float) -> bytes:
        size = int.from_bytes(self._read(4, deadline), "big")
        return self._read(size, deadline)

    def _read(self, n: int, deadline: float) -> bytes:
        chunks, missing = [], n
        while missing:
            self._wait(self._out, select.POLLIN, deadline)
            chunk = os.read(self._out, min(missing, 1 << 20))
            if not chunk:
                raise Lost(self._returncode())
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def _wait(self, fd: int, event: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, event)
        while not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            if time.monotonic() >= deadline:
                raise Lost(None)

    def _returncode(self) -> int | None:
        try:
            return self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
