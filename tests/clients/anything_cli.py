"""Drives AnythingLLM's official CLI (`any`, installed by scripts/test into
tests/clients/node_modules) as a subprocess, with its own HOME, against a server URL."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

CLIENTS = Path(__file__).resolve().parent
ANY = CLIENTS / "node_modules" / ".bin" / "any"
INSTALL_HINT = "run ./scripts/test once, or: npm ci --prefix tests/clients"


@dataclass
class AnyCli:
    home: Path
    base_url: str
    api_key: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "SHELL": "/bin/bash",
               "ANYTHING_LLM_BASE_URL": self.base_url, "ANYTHING_LLM_API_KEY": self.api_key, "NO_COLOR": "1"}
        env.update(extra)
        return env

    def run(self, *args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`any ARGS` with `stdin` piped in (the CLI reads piped stdin before prompting)."""
        assert ANY.exists(), f"AnythingLLM CLI not installed at {ANY}: {INSTALL_HINT}"
        return subprocess.run([str(ANY), *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                              env=self.env(), cwd=self.home)


class Terminal:
    """A process on a pseudo-terminal, for the CLI's interactive prompts (`any setup`)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        # a real terminal's size: with none (0 columns) the prompts wrap after every character
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm"},
                                     cwd=cwd, close_fds=True)
        os.close(slave)
        self.screen = ""

    def expect(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not shown within {timeout}s; the terminal shows:\n{self.screen}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.screen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the process ended and closed the terminal
                    if text not in self.screen:
                        raise AssertionError(f"process ended before {text!r}:\n{self.screen}") from None

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            os.close(self.master)
