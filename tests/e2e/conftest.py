"""End-to-end fixtures; the command-sequence figures printed at the end of the run."""

from __future__ import annotations

from tests.support.sequences import FIGURES, summary_lines


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("command-sequence figures")
    for line in summary_lines():
        terminalreporter.write_line(line)
