"""`csms serve` on PostgreSQL, end to end: a real server process, the operator's CLI and a real
WebSocket charger; the session, its readings, its CDR and its postings are read back from
PostgreSQL, and a security profile registered there is enforced at the handshake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from support.charger import connect_charger, ts
from support.postgres import fresh_database
from support.server_process import ServerProcess, run_cli, running_server
from support.tariffs import STANDARD_TARIFF
from trio_websocket import HandshakeError, open_websocket_url

from csms.storage.base import LEDGER_APPLICATION_NAME

pytestmark = pytest.mark.slow


def cli(server: ServerProcess, *args: str) -> str:
    done = run_cli(list(args), server.env)
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


async def charge(server: ServerProcess) -> int:
    async with connect_charger(server.ocpp_port, "PG-CP1") as charger:
        assert (await charger.boot())[2]["status"] == "Accepted"
        started = await charger.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "PG-TAG", "meterStart": 1000, "timestamp": ts(0)},
        )
        assert started[2]["idTagInfo"]["status"] == "Accepted", started
        tid: int = started[2]["transactionId"]
        meter = {
            "connectorId": 1,
            "transactionId": tid,
            "meterValue": [
                {
                    "timestamp": ts(1800),
                    "sampledValue": [
                        {"value": "3500", "measurand": "Energy.Active.Import.Register"}
                    ],
                }
            ],
        }
        assert (await charger.call("MeterValues", meter))[0] == 3
        assert (await charger.call("MeterValues", meter))[0] == 3  # a retry: stored once
        stop = {"transactionId": tid, "meterStop": 6000, "timestamp": ts(3600), "idTag": "PG-TAG"}
        assert (await charger.call("StopTransaction", stop))[0] == 3
        return tid


async def refused_without_password(server: ServerProcess) -> bool:
    try:
        async with open_websocket_url(server.url("PG-SECURE"), subprotocols=["ocpp1.6"]):
            return False
    except HandshakeError:
        return True


def test_a_session_on_postgres_is_durable_rated_and_billed(tmp_path: Path) -> None:
    tariff = tmp_path / "standard.json"
    tariff.write_text(json.dumps(STANDARD_TARIFF))
    with (
        fresh_database() as url,
        running_server(tmp_path, extra_env={"CSMS_DATABASE_URL": url}) as server,
    ):
        cli(server, "tariffs", "add", str(tariff), "--default", "--effective-from", "2026-01-01")
        cli(server, "tokens", "add", "PG-TAG")
        cli(server, "drivers", "add", "erin", "--payment", "invoice")
        cli(server, "drivers", "assign", "erin", "PG-TAG")
        cli(server, "stations", "add", "PG-SECURE", "--security-profile", "1")
        tid = trio.run(charge, server)
        assert trio.run(refused_without_password, server)
        listed = json.loads(cli(server, "sessions", "list", "--format", "json"))
        assert [(s["id"], s["energy_wh"]) for s in listed] == [(tid, 5000)]

        assert rows(url, "SELECT id, status, meter_start_wh, meter_stop_wh FROM transactions") == [
            (tid, "Completed", 1000, 6000)
        ]
        assert rows(url, "SELECT transaction_id, wh FROM meter_samples") == [(tid, 3500.0)]
        ((currency, excl, incl),) = rows(
            url, "SELECT currency, cost_excl_vat, cost_incl_vat FROM cdrs"
        )
        # 5 kWh at 0.40 plus 0.50 a session, 19 % VAT.
        assert (currency, excl, incl) == ("EUR", "2.50", "2.98")
        assert rows(url, "SELECT COUNT(*) FROM postings") == [(1,)]
        assert rows(url, "SELECT SUM(minor) FROM posting_legs") == [(0,)]  # it balances
    assert server.process.returncode == 0


def terminate_ledger_connection(url: str) -> list[bool]:
    """What a server restart or a network cut does to the ledger's own connection: one
    answer per backend, True once it has gone (waiting up to 10 s for that)."""
    with psycopg.connect(url, autocommit=True) as admin:
        return [
            gone
            for (gone,) in admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = %s",
                (LEDGER_APPLICATION_NAME,),
            )
        ]


async def charge_across_a_dropped_connection(server: ServerProcess, url: str) -> int:
    async with connect_charger(server.ocpp_port, "PG-CP2") as charger:
        assert (await charger.boot())[2]["status"] == "Accepted"
        started = await charger.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "PG-TAG", "meterStart": 0, "timestamp": ts(0)},
        )
        tid: int = started[2]["transactionId"]
        assert await trio.to_thread.run_sync(terminate_ledger_connection, url) == [True]
        stop = {"transactionId": tid, "meterStop": 2000, "timestamp": ts(600), "idTag": "PG-TAG"}
        # The batch finds the connection dropped before it began: it begins on a new one.
        stopped = await charger.call("StopTransaction", stop)
        assert stopped[0] == 3, stopped
        return tid


def test_the_ledger_reconnects_after_postgres_drops_its_connection(tmp_path: Path) -> None:
    with (
        fresh_database() as url,
        running_server(tmp_path, extra_env={"CSMS_DATABASE_URL": url}) as server,
    ):
        cli(server, "tokens", "add", "PG-TAG")
        tid = trio.run(charge_across_a_dropped_connection, server, url)
        assert rows(url, "SELECT id, status, energy_wh FROM transactions") == [
            (tid, "Completed", 2000)
        ]
    assert server.process.returncode == 0
