"""Fixtures of the storage tests: a ledger database (a SQLite file, or a fresh PostgreSQL
database), and the store open on it.

Every test that uses `path` or `store` runs on both backends, the same body; one marked
`sqlite_only` (a PRAGMA, a file that is not a database) runs on SQLite alone. The PostgreSQL
runs skip, saying how to enable them, when no test server is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_harness import db_path
from support.postgres import fresh_database

from csms.storage.sqlite import SqliteStore

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a storage test of SQLite's own behaviour")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize(
            "backend", BACKENDS[:1] if only_sqlite else BACKENDS, indirect=True, scope="function"
        )


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def path(backend: str, tmp_path: Path) -> Iterator[str]:
    """The store's target: a SQLite file path or a PostgreSQL URL."""
    if backend == "sqlite":
        yield db_path(tmp_path)
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def store(path: str) -> Iterator[SqliteStore]:
    store = SqliteStore(path)
    yield store
    store.close()
