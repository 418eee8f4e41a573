"""Fixtures of the storage tests: a ledger database file, and the store open on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_harness import db_path

from csms.storage.sqlite import SqliteStore


@pytest.fixture
def path(tmp_path: Path) -> str:
    return db_path(tmp_path)


@pytest.fixture
def store(path: str) -> Iterator[SqliteStore]:
    store = SqliteStore(path)
    yield store
    store.close()
