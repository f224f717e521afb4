"""Real PostgreSQL and Redis servers on loopback for the test suite.

Each server gets a free port (and PostgreSQL its own temporary directory) and
is torn down completely by ``stop()``. Nothing is faked: the tests talk to the
same server binaries that production uses.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psycopg
import redis
from psycopg import sql

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on loopback that is free right now (chosen by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found on PATH")
    return path


def _tmp_base_reachable_by_others() -> str:
    """The default temp dir if every ancestor is world-traversable, else /tmp.

    The cluster directory belongs to the ``postgres`` user, which must be able
    to walk down to it (a TMPDIR under /root, for instance, would block it).
    """
    base = Path(tempfile.gettempdir()).resolve()
    if all(p.stat().st_mode & stat.S_IXOTH for p in (base, *base.parents)):
        return str(base)
    return "/tmp"


class PostgresServer:
    """A throwaway PostgreSQL cluster: trust auth, no durability, loopback only.

    PostgreSQL refuses to run as root, so when we are root every server
    command runs as the ``postgres`` OS user via runuser; otherwise it runs as
    the current user, who then owns the directory anyway.
    """

    host = LOOPBACK
    user = "postgres"

    def __init__(self) -> None:
        self.port: int | None = None
        self._dir: Path | None = None

    @property
    def _data_dir(self) -> Path:
        assert self._dir is not None
        return self._dir / "data"

    @property
    def _log_file(self) -> Path:
        assert self._dir is not None
        return self._dir / "postgres.log"

    def start(self) -> None:
        initdb = _require_binary("initdb")
        pg_ctl = _require_binary("pg_ctl")
        self._dir = Path(
            tempfile.mkdtemp(prefix="ledgerllm-pg-", dir=_tmp_base_reachable_by_others())
        )
        try:
            if os.geteuid() == 0:
                account = pwd.getpwnam(self.user)
                os.chown(self._dir, account.pw_uid, account.pw_gid)
            self.port = free_port()
            self._run(
                initdb, "-D", str(self._data_dir), "-A", "trust", "-U", self.user, "--no-sync"
            )
            # Durability is pointless for test data; turning it off makes every
            # commit and CREATE DATABASE much faster. -k puts the unix socket in
            # our own directory instead of the system-wide /var/run/postgresql.
            options = (
                f"-p {self.port} -k {self._dir} -c listen_addresses={self.host}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
            )
            self._options = options
            self._run(
                pg_ctl, "-D", str(self._data_dir), "-l", str(self._log_file),
                "-o", options, "-w", "start",
            )
        except BaseException:
            self.stop()
            raise

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql://{self.user}@{self.host}:{self.port}/{name}"

    def restart(self) -> None:
        """Stop the server, dropping every client connection, and start it again on the same port.
        Fast mode, not immediate: with synchronous_commit off (above) an immediate stop would
        lose the last acknowledged commits, which a production server (on) never does."""
        self._run(_require_binary("pg_ctl"), "-D", str(self._data_dir), "-l", str(self._log_file),
                  "-o", self._options, "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        """Kill the server (no clean shutdown needed) and delete its directory."""
        if self._dir is None:
            return
        if (self._data_dir / "postmaster.pid").exists():
            self._run(
                _require_binary("pg_ctl"), "-D", str(self._data_dir), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def _run(self, *command: str) -> None:
        if os.geteuid() == 0:
            command = ("runuser", "-u", self.user, "--", *command)
        result = subprocess.run(
            command,
            cwd=self._dir,  # the postgres user may not be able to read the caller's cwd
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            try:
                log = self._log_file.read_text(errors="replace")
            except OSError:
                log = "(no log written)"
            raise RuntimeError(
                f"PostgreSQL command failed with exit code {result.returncode}: "
                f"{shlex.join(command)}\n--- output ---\n{result.stdout}{result.stderr}"
                f"--- {self._log_file} ---\n{log}"
            )


class RedisServer:
    """A redis-server child process on loopback with persistence disabled."""

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[RedisServer]:
        """A started server, stopped on exit."""
        server = cls()
        server.start()
        try:
            yield server
        finally:
            server.stop()

    host = LOOPBACK

    def __init__(self) -> None:
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found on PATH; run ./scripts/test, which installs it"
            )
        self.port = self.port or free_port()  # started again after stop(): the same port
        # A file rather than a pipe: nobody drains the server's log while tests
        # run, and it is only read back to explain a failed start.
        self._output = tempfile.TemporaryFile(prefix="ledgerllm-redis-")
        self._process = subprocess.Popen(
            [
                binary, "--port", str(self.port), "--bind", self.host,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def flushall(self) -> None:
        with self._client() as client:
            client.flushall()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._process is not None and self._output is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                problem = f"redis-server exited with code {self._process.returncode}"
                break
            try:
                with self._client() as client:
                    if client.ping():
                        return
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                problem = f"redis-server did not answer PING within {timeout:g}s"
                break
            time.sleep(0.05)
        self._output.seek(0)
        log = self._output.read().decode(errors="replace")
        raise RuntimeError(f"{problem}\n--- redis-server output ---\n{log}")
