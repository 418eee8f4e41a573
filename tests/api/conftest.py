"""The API tests need the HTTP side's libraries: without them they are not collected, and
the report header says what to install."""

from __future__ import annotations

import importlib.util

import pytest

MISSING = [m for m in ("fastapi", "hypercorn", "httpx") if importlib.util.find_spec(m) is None]
if MISSING:
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header(config: pytest.Config) -> str | None:
    if MISSING:
        return f"tests/api skipped: {', '.join(MISSING)} not installed (pip install -e '.[test]')"
    return None
