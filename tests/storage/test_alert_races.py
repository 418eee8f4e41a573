"""Open alerts are unique per kind and subject, also when nodes sharing one database raise the
same alert at the same moment: one opens it, the others get None (not an error)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from support.postgres import fresh_database

from csms.storage.sqlite_api import ApiStore

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def raise_offline(store: ApiStore) -> dict[str, Any] | None:
    alert: dict[str, Any] | None = store.raise_alert(
        "station_offline", "CP1", "CP1", "warning", "CP1 is offline", {"why": "test"}, NOW
    )
    return alert


def test_an_open_alert_is_raised_once_and_again_after_it_is_cleared(path: str) -> None:
    store = ApiStore(path)
    try:
        first = raise_offline(store)
        assert first is not None and first["state"] == "active"
        assert raise_offline(store) is None
        assert [a["id"] for a in store.clear_open_alerts("station_offline", "CP1", "op", NOW)] == [
            first["id"]
        ]
        again = raise_offline(store)
        assert again is not None and again["id"] != first["id"]
    finally:
        store.close()


def wait_for_a_blocked_backend(admin: Any) -> None:
    """Until a backend of this database waits for a lock (the second node's insert)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        (waiting,) = admin.execute(
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        if waiting:
            return
        time.sleep(0.01)
    pytest.fail("the second node's insert never waited for the first node's")


def test_two_nodes_raising_the_same_alert_at_once_open_it_once() -> None:
    psycopg = pytest.importorskip("psycopg")
    with fresh_database() as url:
        node = ApiStore(url)  # migrates
        first_node = psycopg.connect(url, autocommit=True)
        admin = psycopg.connect(url, autocommit=True)
        try:
            # The first node has inserted the alert and not committed yet.
            first_node.execute("BEGIN")
            first_node.execute(
                "INSERT INTO alerts (kind, subject, station_id, severity, message, detail,"
                " state, raised_at) VALUES ('station_offline', 'CP1', 'CP1', 'warning', 'x',"
                " '{}', 'active', '2026-03-02T08:00:00.000000+00:00')"
            )
            answers: list[dict[str, Any] | None] = []
            errors: list[BaseException] = []

            def second() -> None:
                try:
                    answers.append(raise_offline(node))
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=second)
            thread.start()
            wait_for_a_blocked_backend(admin)
            first_node.execute("COMMIT")
            thread.join(20)
            assert not thread.is_alive()
            assert errors == []
            assert answers == [None]
            (open_alerts,) = admin.execute(
                "SELECT COUNT(*) FROM alerts WHERE state != 'cleared'"
            ).fetchone()
            assert open_alerts == 1
        finally:
            first_node.close()
            admin.close()
            node.close()
