"""Fixtures of the analytics tests: the hand-built ledger, made once per test session."""

from __future__ import annotations

import pytest
from analytics_ledger import build_ledger


@pytest.fixture(scope="session")
def ledger_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_ledger(tmp_path_factory.mktemp("analytics") / "ledger.db")
