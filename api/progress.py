"""What the long-running commands (rebuild, verify, replay, chain checks, backup, restore,
import, export) write to stderr: progress, messages and errors.

On a terminal: a bar redrawn in place with the count done, the rate and the time left
(rich's progress display). Elsewhere (a log file, a pipe, CI): a plain line every few
seconds. Either way one plain line at the end, with the rate and the time taken, so a slow
run still shows it is moving and a finished one says how it went. rich is imported only
when stderr is a terminal: importing this module stays cheap."""

from __future__ import annotations

import atexit
import sys
import time
from typing import Any

PLAIN_EVERY = 5.0  # seconds between plain lines when stderr is not a terminal
MIB = 1 << 20


def say(message: str) -> None:
    """A message for the operator, on stderr (stdout carries only results)."""
    print(message, file=sys.stderr, flush=True)


def fail(message: str) -> SystemExit:
    """`raise fail(...)`: exit with status 1 and `error: MESSAGE` on stderr."""
    return SystemExit(f"error: {message}")


def mib(size: int) -> str:
    return f"{size / MIB:,.1f} MiB"


class Progress:
    """`LABEL: N[/TOTAL] UNIT (R UNIT/s, ETA S s)` while it runs, `(..., done in S s)` at the end.

    `per` divides the counts when they are shown (`unit="MiB", per=MIB` counts bytes);
    `count` and `rate` stay in what `add` was given. With `shown=False` nothing is drawn:
    for work too small to be worth a line, without an `if` around every call."""

    def __init__(self, label: str, total: int | None, unit: str = "events", *, per: int = 1,
                 shown: bool = True) -> None:
        self.label, self.total, self.unit, self.per, self.shown = label, total, unit, per, shown
        self.count = 0
        self.began = self._drawn = time.monotonic()
        self.ended: float | None = None  # set by done(): the figures stop moving
        self._bar: Any = None
        self._task: Any = None
        if shown and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
            self._bar.start()
            atexit.register(self._bar.stop)  # an error before done(): still clear the bar, show the cursor
            self._task = self._bar.add_task(label, total=None if total is None else total // per, rate="")

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.began

    @property
    def rate(self) -> float:
        return self.count / max(self.seconds, 1e-6)

    def add(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.count // self.per,
                             rate=f"{self.rate / self.per:,.0f} {self.unit}/s")
        elif self.shown and time.monotonic() - self._drawn >= PLAIN_EVERY:
            self._line()

    def _line(self, final: bool = False) -> None:
        self._drawn = time.monotonic()
        rate = self.rate / self.per
        of = f"/{self.total // self.per:,}" if self.total else ""
        tail = ""
        if final:
            tail = f", done in {self.seconds:,.1f} s"
        elif self.total and self.count and rate > 0:
            tail = f", ETA {max(self.total - self.count, 0) / self.per / rate:,.0f} s"
        print(f"{self.label}: {self.count // self.per:,}{of} {self.unit} ({rate:,.0f} {self.unit}/s{tail})",
              file=sys.stderr, flush=True)

    def done(self) -> float:
        """Stop drawing and the clock; print the final line; return the seconds taken."""
        self.ended = time.monotonic()
        if self._bar is not None:
            self._bar.stop()
            atexit.unregister(self._bar.stop)
        if self.shown:
            self._line(final=True)
        return self.seconds
