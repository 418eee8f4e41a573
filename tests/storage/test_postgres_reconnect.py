"""The ledger's own PostgreSQL connection, dropped by the server (a restart, a network cut):
the next batch runs on a new connection, and nothing of the interrupted one is half-kept."""

from __future__ import annotations

from functools import partial

from ledger_harness import ACCEPT_ALL, boot, count, run
from support.postgres import fresh_database

from csms.storage.sqlite import SqliteStore

NAME = "csms-reconnect-test"


def backends(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        return [
            pid
            for (pid,) in admin.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = %s",
                (NAME,),
            )
        ]


def terminate(url: str) -> list[bool]:
    """What a server restart or a network cut does to the store's connection: one answer
    per backend, True once it has gone (waiting up to 10 s for that)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        return [
            gone
            for (gone,) in admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = %s",
                (NAME,),
            )
        ]


def test_the_batch_after_the_server_dropped_the_connection_runs_on_a_new_one() -> None:
    with fresh_database() as url:
        store = SqliteStore(url, application_name=NAME)
        try:
            assert [o.error for o in run(store, ACCEPT_ALL, boot("CP1"))] == [None]
            before = backends(url)
            assert terminate(url) == [True]
            outcomes = run(store, ACCEPT_ALL, boot("CP2"), boot("CP3"))
            assert [o.error for o in outcomes] == [None, None]
            after = backends(url)
            assert len(after) == 1 and after != before
            assert count(url, "stations") == 3
        finally:
            store.close()


def test_a_connection_dropped_between_batch_and_commit_fails_that_batch_only() -> None:
    with fresh_database() as url:
        store = SqliteStore(url, application_name=NAME)
        try:
            store.apply_batch([partial(ACCEPT_ALL.apply, event=boot("CP1"))])
            assert terminate(url) == [True]
            try:
                store.commit()
            except Exception as exc:  # what the ledger actor turns into failed replies
                failed: Exception | None = exc
            else:
                failed = None
            assert failed is not None
            assert count(url, "stations") == 0
            assert [o.error for o in run(store, ACCEPT_ALL, boot("CP2"))] == [None]
            assert count(url, "stations") == 1
        finally:
            store.close()
