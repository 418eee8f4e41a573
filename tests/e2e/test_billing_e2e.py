"""Billing end to end: `csms serve`, the billing CLI, chargers over real WebSockets.

A tariff and drivers go in through `csms tariffs|drivers|plans ...`; sessions run over
loopback; the CDRs, postings and payment outcomes are read back through the CLI and from the
SQLite file. A retried StopTransaction must not charge twice; the payments worker captures
card payments with the built-in provider; invoices come out as JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
from support.charger import connect_charger, ts
from support.server_process import ServerProcess, run_cli, running_server
from support.tariffs import STANDARD_TARIFF as TARIFF


def cli(server: ServerProcess, *args: str) -> str:
    done = run_cli(list(args), server.env)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def one_session(
    server: ServerProcess, station: str, tag: str, energy_wh: int, *, retry_stop: bool = False
) -> list[Any]:
    async with connect_charger(server.ocpp_port, station) as charger:
        assert (await charger.boot())[2]["status"] == "Accepted"
        started = await charger.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": ts(0)},
        )
        assert started[2]["idTagInfo"]["status"] == "Accepted", started
        tid = started[2]["transactionId"]
        stop = {
            "transactionId": tid,
            "meterStop": 1000 + energy_wh,
            "timestamp": ts(3600),
            "idTag": tag,
        }
        replies = [await charger.call("StopTransaction", stop)]
        if retry_stop:  # the reply was lost: the charger sends it again, with a new id
            replies.append(await charger.call("StopTransaction", stop))
        return [tid, *replies]


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def test_billing_through_the_cli_and_real_sessions(tmp_path: Path) -> None:
    tariff_file = tmp_path / "standard.json"
    tariff_file.write_text(json.dumps(TARIFF))
    with running_server(
        tmp_path, unknown_stations="accept", extra_env={"CSMS_PAYMENT_POLL_INTERVAL": "0.2"}
    ) as server:
        added = cli(
            server,
            "tariffs",
            "add",
            str(tariff_file),
            "--default",
            "--effective-from",
            "2026-01-01",
        )
        assert "version 1" in added
        for tag in ("CARD-TAG", "WALLET-TAG", "INVOICE-TAG", "PLAN-TAG"):
            cli(server, "tokens", "add", tag)
        cli(
            server,
            "plans",
            "add",
            "COMMUTER",
            "--monthly-fee",
            "9.99",
            "--included-kwh",
            "5",
            "--overage-rate",
            "0.30",
            "--vat",
            "0.19",
        )
        cli(server, "drivers", "add", "dave", "--payment", "subscription", "--plan", "COMMUTER")
        cli(server, "drivers", "assign", "dave", "PLAN-TAG")
        cli(server, "drivers", "add", "alice", "--payment", "card", "--card-ref", "sim_card_ok")
        cli(server, "drivers", "add", "bob", "--payment", "wallet", "--wallet-minimum", "2")
        cli(server, "drivers", "add", "carol", "--payment", "invoice")
        cli(server, "drivers", "assign", "alice", "CARD-TAG")
        cli(server, "drivers", "assign", "bob", "WALLET-TAG")
        cli(server, "drivers", "assign", "carol", "INVOICE-TAG")
        cli(server, "drivers", "topup", "bob", "30", "--key", "pay-1")
        cli(server, "drivers", "topup", "bob", "30", "--key", "pay-1")  # the same payment

        async def sessions() -> None:
            await one_session(server, "BILL-1", "CARD-TAG", 10_000)
            await one_session(server, "BILL-2", "WALLET-TAG", 20_000, retry_stop=True)
            await one_session(server, "BILL-3", "INVOICE-TAG", 5_000)
            await one_session(server, "BILL-4", "PLAN-TAG", 8_000)

        trio.run(sessions)

        listed = json.loads(cli(server, "sessions", "list", "--format", "json"))
        costs = {
            s["id_tag"]: (s["cost_excl_vat"], s["cost_incl_vat"], s["currency"]) for s in listed
        }
        # 10 kWh x 0.40 + 0.50 = 4.50; VAT per component: 4.76 + 0.60 = 5.36
        assert costs["CARD-TAG"] == ("4.50", "5.36", "EUR")
        assert costs["WALLET-TAG"] == ("8.50", "10.12", "EUR")  # 9.52 + 0.60
        assert costs["INVOICE-TAG"] == ("2.50", "2.98", "EUR")  # 2.38 + 0.60

        # The payments worker holds and captures alice's card payment after the commit.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pending = rows(server.db_path, "SELECT key FROM payment_actions WHERE status != 'done'")
            if not pending:
                break
            time.sleep(0.2)
        assert pending == []
        drivers = {
            d["id"]: d for d in json.loads(cli(server, "drivers", "list", "--format", "json"))
        }
        assert drivers["alice"]["amount_due"] == "0.00"  # captured
        assert drivers["bob"]["wallet_balance"] == "19.88"  # one top-up, one charge: 30 - 10.12
        assert drivers["carol"]["amount_due"] == "2.98"  # billed on the invoice

        # The retried stop charged nothing twice; every posting balances.
        assert rows(server.db_path, "SELECT COUNT(*) FROM cdrs") == [(4,)]
        # A subscriber's session posts nothing: the plan is billed per period.
        assert rows(
            server.db_path, "SELECT COUNT(*) FROM postings WHERE key LIKE 'session:%:charge'"
        ) == [(3,)]
        (total,) = rows(server.db_path, "SELECT SUM(minor) FROM posting_legs")[0]
        assert total == 0

        period = listed[0]["ended_at"][:7]
        assert "4 invoices issued" in cli(server, "invoices", "issue", "--period", period)
        # The subscriber pays the plan, not the session: fee, 5 kWh included, 3 kWh at 0.30.
        plan_invoice = json.loads(
            cli(server, "invoices", "show", f"INV-{period.replace('-', '')}-dave")
        )
        amounts = sorted(Decimal(line["amount_excl_vat"]) for line in plan_invoice["lines"])
        assert amounts == [Decimal("0.00"), Decimal("0.90"), Decimal("9.99")]
        assert plan_invoice["totals"]["amount_excl_vat"] == "10.89"
        number = f"INV-{period.replace('-', '')}-carol"
        invoice = json.loads(cli(server, "invoices", "show", number))
        assert invoice["totals"]["amount_incl_vat"] == "2.98"
        assert invoice["amount_due"] == "2.98"
        lines = list(
            csv.DictReader(io.StringIO(cli(server, "invoices", "show", number, "-f", "csv")))
        )
        assert lines[-1]["line"] == "total"
        assert Decimal(lines[-1]["amount_incl_vat"]) == Decimal("2.98")
        receipt = json.loads(cli(server, "invoices", "receipt", str(listed[-1]["id"])))
        assert receipt["number"].startswith("RCT-")


def test_billing_cli_refuses_bad_input_and_stores_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    with running_server(tmp_path) as server:
        for body, message in [
            ("{not json", "JSON"),
            (json.dumps({**TARIFF, "currency": "XYZ"}), "currency"),
            (
                json.dumps(
                    {
                        **TARIFF,
                        "elements": [
                            {"price_components": [{"type": "ENERGY", "price": -1, "step_size": 1}]}
                        ],
                    }
                ),
                "elements[0].price_components[0].price",
            ),
        ]:
            bad.write_text(body)
            done = run_cli(["tariffs", "add", str(bad), "--default"], server.env)
            assert done.returncode != 0 and message in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
        assert rows(server.db_path, "SELECT COUNT(*) FROM tariffs") == [(0,)]
        for argv, message in [
            (["tariffs", "add", str(bad), "--connector", "2"], "--connector needs --station"),
            (["drivers", "add", "x", "--payment", "subscription"], "--plan"),
            (["drivers", "add", "x", "--payment", "card"], "card reference"),
            (["drivers", "topup", "nobody", "5"], "no driver"),
            (["drivers", "assign", "nobody", "TAG"], "no driver"),
            (["invoices", "issue", "--period", "2026-13"], "--period"),
            (["invoices", "show", "INV-NONE"], "no invoice"),
            (["tariffs", "show", "NONE"], "no tariff"),
        ]:
            done = run_cli(argv, server.env)
            assert done.returncode != 0 and message in done.stderr, (argv, done.stderr)
            assert "Traceback" not in done.stderr
