"""Virtual 2.0.1 chargers: one charger's sessions through TransactionEvents (RFID, app starts
by RequestStartTransaction, a remote stop, a meter reset, an offline period), and a mixed
1.6 and 2.0.1 faulty fleet that reconciles exactly, energy and amounts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio
import trio.testing
from runtime.runtime_harness import memory_csms
from sim_harness import ev, running, sent_calls, virtual_clock
from support.settings import make_settings

from csms.storage.sqlite_ledger import SqliteLedgerTx
from simulator.chargepoint import VirtualChargePoint
from simulator.connectors import ConnectorSpec
from simulator.run import run_virtual_sync
from simulator.scenario import load_scenario, shipped_scenario
from simulator.transport import Connector, MessageTransport, connect_stream
from simulator.v201_commands import V201Commands

Clock = trio.testing.MockClock


def _connector(server: object, station_id: str, version: str = "ocpp2.0.1") -> Connector:
    async def connect(nursery: trio.Nursery) -> MessageTransport:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        await server.serve(server_stream)  # type: ignore[attr-defined]
        return await connect_stream(client_stream, station_id, subprotocols=(version,))

    return connect


async def test_a_201_charger_runs_sessions(tmp_path: Path, autojump_clock: Clock) -> None:
    settings = make_settings(tmp_path)
    async with memory_csms(settings) as server:
        server.store.upsert_token("RFID-1")
        server.store.upsert_token("APP-1")
        cp = VirtualChargePoint(
            "SIM201-1",
            _connector(server, "SIM201-1"),
            connectors=[ConnectorSpec(11_000), ConnectorSpec(11_000)],
            clock=virtual_clock(),
            ocpp_version="ocpp2.0.1",
        )
        async with running(cp):
            await cp.wait_booted()
            connection = server.registry.get("SIM201-1")
            assert connection is not None and connection.version == "ocpp2.0.1"
            # RFID: authorize, charge for an hour with a meter reset halfway, unplug.
            plugged = await cp.plug_in(1, ev(), "RFID-1")
            assert (plugged.outcome, plugged.status) == ("Started", "Accepted")
            await trio.sleep(1800)
            cp.meter_reset(1)
            await trio.sleep(1800)
            await cp.unplug(1)
            # App: plugged in, started by the CSMS, stopped by it while offline... no: online.
            waiting = await cp.plug_in(2, ev(), "APP-1", via_app=True)
            assert waiting.outcome == "Waiting"
            started = await server.registry.send_command(
                "SIM201-1",
                "RequestStartTransaction",
                {
                    "idToken": {"idToken": "APP-1", "type": "Central"},
                    "remoteStartId": 42,
                    "evseId": 2,
                },
            )
            assert started == {"status": "Accepted"}
            await cp.wait_for(lambda: cp.connectors[2].tx is not None)
            await trio.sleep(600)
            tx = cp.connectors[2].tx
            assert tx is not None and tx.station_tx_id is not None
            status = await server.registry.send_command(
                "SIM201-1", "GetTransactionStatus", {"transactionId": tx.station_tx_id}
            )
            assert status["ongoingIndicator"] is True
            stopped = await server.registry.send_command(
                "SIM201-1", "RequestStopTransaction", {"transactionId": tx.station_tx_id}
            )
            assert stopped == {"status": "Accepted"}
            await cp.wait_for(lambda: cp.connectors[2].tx is None)
            await cp.wait_delivered()
        sessions = {s["connector_id"]: s for s in server.store.list_sessions()}
        mapped = SqliteLedgerTx(server.store._db)
        app_session = mapped.station_transaction_of(sessions[2]["id"])
    rfid, app = sorted(cp.sessions, key=lambda s: s.connector_id)
    assert rfid.meter_resets == 1
    assert sessions[1]["energy_wh"] == rfid.energy_wh > 0
    assert sessions[2]["energy_wh"] == app.energy_wh > 0
    assert sessions[2]["stop_reason"] == "Remote"
    assert (sessions[1]["status"], sessions[2]["status"]) == ("Completed", "Completed")
    assert app_session is not None
    assert (app_session.station_tx_id, app_session.remote_start_id) == (app.station_tx_id, 42)
    assert app.station_tx_id is not None and app.transaction_id is None
    events = sent_calls(cp, "TransactionEvent")
    assert len(events) >= 6
    assert not sent_calls(cp, "StartTransaction") and not sent_calls(cp, "StopTransaction")
    assert isinstance(cp.link._answer.__self__, V201Commands)  # type: ignore[attr-defined]


async def test_a_201_charger_holds_transactions_while_offline(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = make_settings(tmp_path)
    async with memory_csms(settings) as server:
        server.store.upsert_token("RFID-2")
        cp = VirtualChargePoint(
            "SIM201-OFF",
            _connector(server, "SIM201-OFF"),
            clock=virtual_clock(),
            ocpp_version="ocpp2.0.1",
            config={"AllowOfflineTxForUnknownId": True},
        )
        async with running(cp):
            await cp.wait_booted()
            await cp.plug_in(1, ev(), "RFID-2")
            await trio.sleep(300)
            cp.go_offline(3600)
            await trio.sleep(1200)
            await cp.unplug(1)
            assert cp.queued_transaction_messages > 0
            await trio.sleep(3600)
            await cp.wait_delivered()
        (session,) = server.store.list_sessions()
        offline_events = server.store._db.execute(
            "SELECT COUNT(*) FROM station_transaction_events WHERE offline = 1"
        ).fetchone()[0]
    (record,) = cp.sessions
    assert session["energy_wh"] == record.energy_wh > 0
    assert session["status"] == "Completed"
    assert offline_events >= 1


def test_a_mixed_faulty_fleet_reconciles_exactly(tmp_path: Path) -> None:
    base = load_scenario(shipped_scenario("faulty")).with_overrides(chargers=8)
    (group,) = base.stations
    scenario = base.model_copy(
        update={
            "stations": (
                group.model_copy(update={"prefix": "F16", "count": 4}),
                group.model_copy(
                    update={"prefix": "F201", "count": 4, "ocpp_version": "ocpp2.0.1"}
                ),
            )
        }
    )
    outcome = run_virtual_sync(scenario, tmp_path / "ledger.db")
    summary = outcome.summary
    reconciliation = summary["reconciliation"]
    assert reconciliation["lost_sessions"] == 0, outcome.reconciliation.differences  # type: ignore[union-attr]
    assert reconciliation["duplicate_sessions"] == 0
    assert reconciliation["energy_diff_wh"] == 0, outcome.reconciliation.differences  # type: ignore[union-attr]
    assert reconciliation["amount_diff"] == "0", outcome.reconciliation.differences  # type: ignore[union-attr]
    assert reconciliation["exact"] is True
    sessions = outcome.frames["sessions"]
    per_version = Counter(sessions["station_id"].str.startswith("F201"))
    assert per_version[True] >= 3 and per_version[False] >= 3
    messages = outcome.frames["messages"]
    f201 = messages[messages["station_id"].str.startswith("F201")]
    assert "TransactionEvent" in set(f201["action"])
    assert "StartTransaction" not in set(f201["action"])
    # Sessions of 2.0.1 chargers are told their running cost.
    assert "CostUpdated" in set(f201[f201["direction"] == "received"]["action"])
