"""The hostile-input suite's figures, printed at the end of the run (no `-s` needed)."""

from __future__ import annotations

import pytest
from security_harness import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("hostile-input figures")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name}: {value}")
