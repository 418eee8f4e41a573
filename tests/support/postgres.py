"""A private PostgreSQL database per test, on the server `CSMS_TEST_POSTGRES_URL` names.

`.ci/run` sets the variable; on a machine without it the tests that need PostgreSQL skip,
saying how to enable them. Each test gets a database of its own (created from the URL's
database as the maintenance connection, dropped afterwards), so tests and parallel runs
never see each other's rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_VAR = "CSMS_TEST_POSTGRES_URL"
SKIP_REASON = (
    f"PostgreSQL tests need {ENV_VAR}, e.g. "
    f"{ENV_VAR}=postgresql://postgres@127.0.0.1:5432/test (.ci/run sets it)"
)


def admin_url() -> str:
    """The maintenance URL, or skip the calling test when none is configured."""
    url = os.environ.get(ENV_VAR)
    if not url:
        pytest.skip(SKIP_REASON)
    return url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped (with its connections) on exit."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests need the psycopg package")
    from csms.storage.postgres import scratch_database

    with scratch_database(admin_url(), "csms_test") as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fixture form of `fresh_database` (import it into a conftest to use it)."""
    with fresh_database() as url:
        yield url
