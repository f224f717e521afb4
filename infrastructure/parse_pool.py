"""The parse port, sandboxed: `ParserPool.parse(filename, data, content_type) -> ParsedDocument`
runs in a small pool of worker processes (parse_worker.py), never in the server's.

- Each worker is a clean interpreter with only the parsers imported, its address space capped
  (PARSE_MAX_MEMORY_MB), a CPU-time cap per file (PARSE_CPU_SECONDS), and an environment
  without the server's secrets. Workers stay warm between files, so a small document costs
  milliseconds; one starts with the server, more when parses overlap.
- At most PARSE_WORKERS files are parsed at once. A caller waits up to PARSE_QUEUE_TIMEOUT
  for a free worker (then `ParsingBusy`, 503), then up to PARSE_TIMEOUT for the answer; past
  that the worker is killed. A worker that dies (killed by a cap, or by us) is replaced at once.
- Refusals keep the port's error types: `UnsupportedFileType`, `UnsafeName`, `UnparsableFile`,
  and `ParseLimitExceeded` (an `UnparsableFile`) naming the limit and the setting that raises it.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from domain.errors import DomainError
from infrastructure import parsers
from infrastructure.parse_limits import ParseLimitExceeded, ParseLimits, refusal
from infrastructure.parse_process import Lost, WorkerProcess
from infrastructure.parse_worker import ParseRequest, Parsed, Reply, WorkerConfig

_ROOT = Path(parsers.__file__).resolve().parent.parent  # the directory holding our packages
START_TIMEOUT = 60.0  # seconds a new worker may take to import the parsers on a busy machine
_ERRORS = {"unsupported": parsers.UnsupportedFileType, "unsafe": parsers.UnsafeName,
           "unparsable": parsers.UnparsableFile, "limit": ParseLimitExceeded}


class ParsingBusy(DomainError):
    """Every worker stayed busy for as long as a caller may wait."""

    status = 503


class ParsingUnavailable(DomainError):
    """No worker could be started (or the pool is closed)."""

    status = 503


class SandboxSettings(msgspec.Struct, frozen=True, kw_only=True):
    workers: int = 2
    timeout: float = 90.0
    queue_timeout: float = 10.0
    cpu_seconds: int = 60
    memory_mb: int = 1024
    limits: ParseLimits = ParseLimits()


class ParserPool:
    """Parses in worker processes: `parse` has the shape of `parsers.parse`; `warm` starts a
    worker ahead of the first file; `close` stops them all."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        config = WorkerConfig(limits=settings.limits, memory_mb=settings.memory_mb, cpu_seconds=settings.cpu_seconds)
        self._argv = [sys.executable, "-I", "-c",
                      f"import sys; sys.path.insert(0, {str(_ROOT)!r}); "
                      "from infrastructure.parse_worker import main; main()",
                      msgspec.json.encode(config).decode()]
        self._slots = threading.BoundedSemaphore(settings.workers)
        self._idle: list[WorkerProcess] = []
        self._lock = threading.Lock()
        self._closed = False
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Reply).decode

    @classmethod
    def from_settings(cls, settings: Any) -> ParserPool:
        """From the server's `Settings` (the PARSE_* variables); SettingsError names a bad one."""
        from infrastructure.settings import SettingsError

        for name in ("workers", "timeout", "queue_timeout", "cpu_seconds", "max_memory_mb", "max_unpacked_bytes",
                     "max_text_chars", "max_pages"):
            if getattr(settings, f"parse_{name}") <= 0:
                raise SettingsError(f"PARSE_{name.upper()} must be greater than 0.")
        return cls(SandboxSettings(
            workers=settings.parse_workers, timeout=settings.parse_timeout,
            queue_timeout=settings.parse_queue_timeout, cpu_seconds=settings.parse_cpu_seconds,
            memory_mb=settings.parse_max_memory_mb,
            limits=ParseLimits(max_unpacked_bytes=settings.parse_max_unpacked_bytes,
                               max_text_chars=settings.parse_max_text_chars, max_pages=settings.parse_max_pages),
        ))

    def warm(self, count: int = 1) -> None:
        """Start workers now (they import in the background) so the first files need not wait."""
        with self._lock:
            while not self._closed and len(self._idle) < min(count, self.settings.workers):
                self._idle.append(self._spawn())

    def parse(self, filename: str, data: bytes, content_type: str | None = None) -> parsers.ParsedDocument:
        wait = self.settings.queue_timeout
        if not self._slots.acquire(timeout=wait):
            raise ParsingBusy(f"All {self.settings.workers} document parsers stayed busy for {wait:g} s; "
                              "try again shortly (PARSE_WORKERS sets how many files are parsed at once).")
        try:
            return self._parse_on(self._take(), ParseRequest(filename, data, content_type))
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed, idle, self._idle = True, self._idle, []
        for worker in idle:
            worker.kill()  # idle workers hold nothing worth a graceful exit

    def _parse_on(self, worker: WorkerProcess, request: ParseRequest) -> parsers.ParsedDocument:
        payload = self._encode(request)
        worker, deadline = self._send(worker, payload)
        try:
            reply: Reply = self._decode(worker.receive(deadline))
        except Lost as lost:
            self._discard(worker)
            raise self._lost(request.filename, lost) from None
        except msgspec.DecodeError:  # not our protocol any more: the worker is not to be trusted
            self._discard(worker)
            raise parsers.UnparsableFile(f"{request.filename!r} could not be parsed (the parser misbehaved)") from None
        if reply.retire:
            self._discard(worker)
        else:
            self._give_back(worker)
        if isinstance(reply, Parsed):
            return reply.document
        raise _ERRORS.get(reply.kind, parsers.UnparsableFile)(reply.message)

    def _send(self, worker: WorkerProcess, payload: bytes) -> tuple[WorkerProcess, float]:
        """Hand the file to a worker that is up; the file's PARSE_TIMEOUT starts then (a busy
        machine may take seconds to start a worker, which is no fault of the file). A worker
        that died before reading the file (while idle, or starting) had nothing to do with it,
        so a fresh one gets a second try. Returns the worker and the file's deadline."""
        outcome = self._offer(worker, payload)
        if isinstance(outcome, float):
            return worker, outcome
        retry = outcome.returncode is not None
        self._discard(worker, replace=not retry)
        if retry:
            worker = self._spawn()
            outcome = self._offer(worker, payload)
            if isinstance(outcome, float):
                return worker, outcome
            self._discard(worker)
        raise ParsingUnavailable(self._start_failure(outcome))

    def _offer(self, worker: WorkerProcess, payload: bytes) -> float | Lost:
        try:
            worker.handshake(time.monotonic() + START_TIMEOUT)
            deadline = time.monotonic() + self.settings.timeout
            worker.send(payload, deadline)
        except Lost as lost:
            return lost
        return deadline

    def _take(self) -> WorkerProcess:
        with self._lock:
            if self._closed:
                raise ParsingUnavailable("The server is shutting down; try again shortly.")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()  # died while idle (an operator, the OOM killer): reap it
        return self._spawn()

    def _spawn(self) -> WorkerProcess:
        try:
            return WorkerProcess(self._argv)
        except OSError as e:  # out of processes, memory or file descriptors
            raise ParsingUnavailable(f"A document parser could not be started ({e.strerror}); "
                                     "try again shortly.") from None

    def _give_back(self, worker: WorkerProcess) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def _discard(self, worker: WorkerProcess, *, replace: bool = True) -> None:
        """Kill the worker and start its replacement, which warms up while nobody waits."""
        worker.kill()
        with self._lock:
            if replace and not self._closed and len(self._idle) < self.settings.workers:
                try:
                    self._idle.append(self._spawn())
                except ParsingUnavailable:
                    pass  # the next file starts one on demand

    def _lost(self, filename: str, lost: Lost) -> ParseLimitExceeded:
        s = self.settings
        if lost.returncode is None:
            return refusal(filename, f"took longer than {s.timeout:g} s to parse",
                           "PARSE_TIMEOUT", f"{s.timeout:g}", " s")
        if lost.returncode == -signal.SIGXCPU:
            return refusal(filename, f"needs more than {s.cpu_seconds} s of CPU time to parse",
                           "PARSE_CPU_SECONDS", s.cpu_seconds, " s")
        return refusal(filename, f"stopped the parser ({_how(lost.returncode)}), most likely by needing more than "
                       f"{s.memory_mb} MB of memory", "PARSE_MAX_MEMORY_MB", s.memory_mb, " MB")

    def _start_failure(self, lost: Lost) -> str:
        how = "did not start in time" if lost.returncode is None else f"could not start ({_how(lost.returncode)})"
        return (f"The document parser {how}; check PARSE_MAX_MEMORY_MB={self.settings.memory_mb} "
                "(a worker needs about 100 MB to start) and the server log.")


def _how(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
