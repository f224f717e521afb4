"""Progress for long-running commands (rebuild, verify, replay, chain checks), on stderr.

On a terminal: a bar redrawn in place with events done, events/s and the time left
(rich's progress display). Elsewhere (a log file, a pipe, CI): a plain line every few
seconds and one at the end, so a slow run still shows it is moving."""

from __future__ import annotations

import sys
import time
from typing import Any

PLAIN_EVERY = 5.0  # seconds between plain lines when stderr is not a terminal


class Progress:
    def __init__(self, label: str, total: int | None, unit: str = "events") -> None:
        self.label, self.total, self.unit = label, total, unit
        self.count = 0
        self.began = self._drawn = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, rate="")

    @property
    def rate(self) -> float:
        return self.count / max(time.monotonic() - self.began, 1e-6)

    def add(self, n: int) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.count, rate=f"{self.rate:,.0f} {self.unit}/s")
        elif time.monotonic() - self._drawn >= PLAIN_EVERY:
            self._line()

    def _line(self) -> None:
        self._drawn = time.monotonic()
        of = f"/{self.total:,}" if self.total else ""
        eta = ""
        if self.total and self.count and self.rate > 0:
            eta = f", ETA {max(self.total - self.count, 0) / self.rate:,.0f} s"
        print(f"{self.label}: {self.count:,}{of} {self.unit} ({self.rate:,.0f} {self.unit}/s{eta})",
              file=sys.stderr, flush=True)

    def done(self) -> float:
        """Stop drawing; print the final line; return the seconds taken."""
        if self._bar is not None:
            self._bar.stop()
        self._line()
        return time.monotonic() - self.began
