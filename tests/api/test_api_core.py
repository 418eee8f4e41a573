"""The operator API over real HTTP, against an in-process CSMS with real WebSocket chargers:
authentication and scopes, stations, commands and every error path, the audit log, sessions,
drivers and tokens, the live event stream and the metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from api_harness import (
    SILENT,
    Api,
    next_event,
    running_api,
    scripted_charger,
    sse_events,
    wait_for,
)
from support.charger import ts
from support.settings import make_settings
from support.tariffs import STANDARD_TARIFF as TARIFF

from csms.config import Settings
from csms.domain.tariffs import parse_tariff
from csms.storage.sqlite import sqlite_path
from csms.storage.sqlite_api import ApiStore


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings: Settings = make_settings(tmp_path, call_timeout=1.0)
    async with running_api(settings) as running:
        yield running


async def test_keys_and_scopes(api: Api) -> None:
    for path in ("/openapi.json", "/docs", "/metrics", "/"):
        assert (await api.anonymous.get(path)).status_code == 200, path
    spec = (await api.anonymous.get("/openapi.json")).json()
    assert "/api/stations/{station_id}/commands/{action}" in spec["paths"]

    missing = await api.anonymous.get("/api/stations")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await api.anonymous.get("/api/stations", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    assert (await api.read.get("/api/stations")).status_code == 200
    refused = await api.read.post("/api/stations", json={"id": "CP-R"})
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert (await api.operate.post("/api/stations", json={"id": "CP-R"})).status_code == 403
    assert (await api.admin.post("/api/stations", json={"id": "CP-R"})).status_code == 201

    # Keys made through the API work at once and stop working when revoked.
    made = await api.admin.post("/api/keys", json={"name": "dash", "scope": "read"})
    assert made.status_code == 201
    dash = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await api.anonymous.get("/api/stations", headers=dash)).status_code == 200
    assert (await api.admin.delete("/api/keys/dash")).status_code == 204
    assert (await api.anonymous.get("/api/stations", headers=dash)).status_code == 401
    listed = (await api.admin.get("/api/keys")).json()
    assert {k["name"] for k in listed} >= {"dash", "admin-key"}
    assert all("key_hash" not in k and "key" not in k for k in listed)


async def test_stations_show_live_state(api: Api) -> None:
    # Profile 0: the charger below connects without credentials (profile 1 would be refused).
    created = await api.admin.post("/api/stations", json={"id": "CP-1", "security_profile": 0})
    assert created.status_code == 201
    assert created.json()["online"] is False
    assert (await api.admin.post("/api/stations", json={"id": "CP-1"})).status_code == 409
    bad = await api.admin.post("/api/stations", json={"id": "bad id/with slash"})
    assert bad.status_code == 422

    async with scripted_charger(api.ocpp_port, "CP-1") as charger:
        await charger.status(1, "Charging")
        await charger.status(2, "Faulted", "GroundFailure")
        await charger.result("Heartbeat", {})

        async def heartbeat_recorded() -> dict[str, Any] | None:
            # Heartbeats and statuses are answered before their commit: wait for it.
            station: dict[str, Any] = (await api.read.get("/api/stations/CP-1")).json()
            return station if station["last_heartbeat_at"] is not None else None

        station = await wait_for(heartbeat_recorded)
        assert station["online"] is True
        assert station["ocpp_version"] == "ocpp1.6"
        assert station["vendor"] == "Acme" and station["firmware_version"] == "1.2.3"
        assert station["security_profile"] == 0
        assert station["last_heartbeat_at"] is not None
        statuses = {
            c["connector_id"]: (c["status"], c["error_code"]) for c in station["connectors"]
        }
        assert statuses == {1: ("Charging", "NoError"), 2: ("Faulted", "GroundFailure")}
        assert (await api.admin.delete("/api/stations/CP-1")).status_code == 409

    updated = await api.admin.patch("/api/stations/CP-1", json={"security_profile": 2})
    assert updated.json()["security_profile"] == 2
    assert (await api.admin.patch("/api/stations/NOPE", json={})).status_code == 404
    await wait_for(lambda: _offline(api, "CP-1"))
    assert (await api.admin.delete("/api/stations/CP-1")).status_code == 204
    assert (await api.read.get("/api/stations/CP-1")).status_code == 404


async def _offline(api: Api, station: str) -> bool:
    return station not in api.csms.registry


async def test_commands_round_trip_and_every_error_path(api: Api) -> None:
    answers: dict[str, Any] = {
        "GetConfiguration": {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        },
        "ClearCache": SILENT,
        "UnlockConnector": ("error", "NotSupported", "no lock here"),
    }
    await api.admin.post("/api/stations", json={"id": "CP-OFF"})
    async with scripted_charger(api.ocpp_port, "CP-CMD", answers) as charger:
        url = "/api/stations/CP-CMD/commands"
        reset = await api.operate.post(f"{url}/Reset", json={"type": "Soft"})
        assert reset.status_code == 200, reset.text
        assert reset.json()["response"] == {"status": "Accepted"}
        assert charger.received[-1] == ("Reset", {"type": "Soft"})

        config = await api.operate.post(
            f"{url}/GetConfiguration", json={"key": ["HeartbeatInterval"]}
        )
        assert config.json()["response"]["configurationKey"][0]["value"] == "300"

        sent_so_far = len(charger.received)
        invalid = await api.operate.post(f"{url}/Reset", json={"type": "Sideways"})
        assert invalid.status_code == 422
        assert invalid.json()["detail"]["ocpp_error"] == "PropertyConstraintViolation"
        missing = await api.operate.post(f"{url}/RemoteStartTransaction", json={})
        assert missing.status_code == 422
        not_object = await api.operate.post(f"{url}/Reset", json=["Soft"])
        assert not_object.status_code == 422
        unknown_action = await api.operate.post(f"{url}/Explode", json={})
        assert unknown_action.status_code == 404 and "Reset" in unknown_action.json()["detail"]
        assert len(charger.received) == sent_so_far  # nothing invalid reached the charger

        rejected = await api.operate.post(f"{url}/UnlockConnector", json={"connectorId": 1})
        assert rejected.status_code == 502
        assert rejected.json()["detail"]["ocpp_error"] == "NotSupported"

        timeout = await api.operate.post(f"{url}/ClearCache", json={})
        assert timeout.status_code == 504
        assert charger.received[-1] == ("ClearCache", {})

        # The connection still serves commands after a timeout.
        again = await api.operate.post(f"{url}/Reset", json={"type": "Hard"})
        assert again.status_code == 200

    assert (
        await api.operate.post("/api/stations/NOPE/commands/Reset", json={"type": "Soft"})
    ).status_code == 404
    offline = await api.operate.post("/api/stations/CP-OFF/commands/Reset", json={"type": "Soft"})
    assert offline.status_code == 409 and "offline" in offline.json()["detail"]
    assert (
        await api.read.post("/api/stations/CP-OFF/commands/Reset", json={"type": "Soft"})
    ).status_code == 403
    commands = (await api.read.get("/api/commands")).json()
    assert "RemoteStartTransaction" in commands["ocpp1.6"]


async def test_every_mutating_call_is_audited(api: Api) -> None:
    await api.admin.post("/api/stations", json={"id": "CP-A"})
    await api.operate.post("/api/stations/CP-A/commands/Reset", json={"type": "Soft"})  # 409
    await api.anonymous.delete("/api/stations/CP-A")  # 401
    await api.read.get("/api/stations")  # not mutating: not audited
    entries = (await api.admin.get("/api/audit")).json()
    seen = [(e["method"], e["path"], e["status_code"], e["key_name"]) for e in entries]
    assert seen[:3] == [
        ("DELETE", "/api/stations/CP-A", 401, None),
        ("POST", "/api/stations/CP-A/commands/Reset", 409, "operate-key"),
        ("POST", "/api/stations", 201, "admin-key"),
    ]
    assert json.loads(entries[2]["body"]) == {"id": "CP-A"}
    assert all(e["method"] != "GET" for e in entries)
    assert (await api.operate.get("/api/audit")).status_code == 403
    page = (
        await api.admin.get("/api/audit", params={"limit": 1, "before": entries[0]["id"]})
    ).json()
    assert [e["id"] for e in page] == [entries[1]["id"]]


async def test_sessions_filters_pages_and_costs(api: Api) -> None:
    store = ApiStore(sqlite_path(api.csms.settings.database_url))
    try:
        from datetime import UTC, datetime

        store.add_tariff(
            parse_tariff(json.dumps(TARIFF)),
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime.now(UTC),
            default=True,
        )
    finally:
        store.close()
    await api.admin.post("/api/drivers", json={"id": "alice", "payment_method": "invoice"})
    await api.admin.post("/api/tokens", json={"id_tag": "TAG-A", "driver_id": "alice"})
    await api.admin.post("/api/tokens", json={"id_tag": "TAG-B"})
    async with scripted_charger(api.ocpp_port, "CP-S") as charger:
        ids = []
        for n, tag in enumerate(["TAG-A", "TAG-B", "TAG-A"]):
            started = await charger.result(
                "StartTransaction",
                {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": ts(n * 7200)},
            )
            tid = started["transactionId"]
            ids.append(tid)
            await charger.result(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tid,
                    "meterValue": [
                        {
                            "timestamp": ts(n * 7200 + 600),
                            "sampledValue": [
                                {
                                    "value": "3000",
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                }
                            ],
                        }
                    ],
                },
            )
            if n < 2:
                await charger.result(
                    "StopTransaction",
                    {"transactionId": tid, "meterStop": 11000, "timestamp": ts(n * 7200 + 3600)},
                )

    everything = (await api.read.get("/api/sessions")).json()
    assert everything["total"] == 3 and [s["id"] for s in everything["items"]] == ids[::-1]
    by_driver = (await api.read.get("/api/sessions", params={"driver": "alice"})).json()
    assert {s["id"] for s in by_driver["items"]} == {ids[0], ids[2]}
    by_token = (await api.read.get("/api/sessions", params={"token": "TAG-B"})).json()
    assert [s["id"] for s in by_token["items"]] == [ids[1]]
    active = (
        await api.read.get("/api/sessions", params={"status": "Active", "station": "CP-S"})
    ).json()
    assert [s["id"] for s in active["items"]] == [ids[2]]
    assert active["items"][0]["live_cost"]["currency"] == "EUR"
    period = (
        await api.read.get("/api/sessions", params={"from": ts(3600), "to": ts(3 * 3600)})
    ).json()
    assert [s["id"] for s in period["items"]] == [ids[1]]
    page = (await api.read.get("/api/sessions", params={"limit": 2})).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2
    rest = (await api.read.get("/api/sessions", params={"limit": 2, "offset": 2})).json()
    assert [s["id"] for s in rest["items"]] == [ids[0]] and rest["next_offset"] is None
    assert (await api.read.get("/api/sessions", params={"status": "Bogus"})).status_code == 422

    detail = (await api.read.get(f"/api/sessions/{ids[0]}")).json()
    assert detail["energy_wh"] == 10_000
    assert detail["cost_incl_vat"] == "5.36" and detail["currency"] == "EUR"
    assert any(s["value"] == "3000" for s in detail["meter_samples"])
    assert (await api.read.get("/api/sessions/999999")).status_code == 404


async def test_drivers_tokens_blocking_and_local_list(api: Api) -> None:
    assert (
        await api.admin.post("/api/drivers", json={"id": "bob", "payment_method": "wallet"})
    ).status_code == 201
    assert (
        await api.admin.post("/api/drivers", json={"id": "bob", "payment_method": "wallet"})
    ).status_code == 409
    card = await api.admin.post("/api/drivers", json={"id": "x", "payment_method": "card"})
    assert card.status_code == 422 and "card" in card.json()["detail"]
    for tag, status in [("B-1", "Accepted"), ("B-2", "Blocked"), ("LOOSE", "Accepted")]:
        body = {"id_tag": tag, "status": status} | ({"driver_id": "bob"} if tag != "LOOSE" else {})
        assert (await api.admin.post("/api/tokens", json=body)).status_code == 201
    assert (await api.admin.post("/api/tokens", json={"id_tag": "B-1"})).status_code == 409
    assert (
        await api.admin.post("/api/tokens", json={"id_tag": "T", "driver_id": "nobody"})
    ).status_code == 404
    assert (await api.admin.post("/api/tokens", json={"id_tag": "X" * 21})).status_code == 422

    blocked = (await api.operate.post("/api/drivers/bob/block")).json()
    assert blocked["blocked"] is True
    assert {t["status"] for t in blocked["id_tokens"]} == {"Blocked"}
    unblocked = (await api.operate.post("/api/drivers/bob/unblock")).json()
    assert {t["id_tag"]: t["status"] for t in unblocked["id_tokens"]} == {
        "B-1": "Accepted",
        "B-2": "Blocked",
    }

    assert (await api.operate.post("/api/tokens/LOOSE/block")).json()["status"] == "Blocked"
    assert (await api.operate.post("/api/tokens/LOOSE/unblock")).json()["status"] == "Accepted"
    patched = await api.admin.patch(
        "/api/tokens/LOOSE", json={"max_active_transactions": 2, "expiry": "2030-01-01T00:00:00Z"}
    )
    assert patched.json()["max_active_transactions"] == 2 and patched.json()["expiry"].startswith(
        "2030-01-01"
    )
    assert (await api.admin.delete("/api/tokens/LOOSE")).status_code == 204
    assert (await api.read.get("/api/tokens/LOOSE")).status_code == 404
    assert (
        await api.admin.put("/api/drivers/bob", json={"payment_method": "invoice", "name": "Bob"})
    ).json()["name"] == "Bob"

    async with scripted_charger(api.ocpp_port, "CP-LL") as charger:
        pushed = await api.operate.post("/api/stations/CP-LL/local-list", json={})
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["version"] == 1 and pushed.json()["response"] == {"status": "Accepted"}
        action, payload = charger.received[-1]
        assert action == "SendLocalList" and payload["listVersion"] == 1
        statuses = {e["idTag"]: e["idTagInfo"]["status"] for e in payload["localAuthorizationList"]}
        assert statuses == {"B-1": "Accepted", "B-2": "Blocked"}
        second = await api.operate.post("/api/stations/CP-LL/local-list", json={})
        assert second.json()["version"] == 2
    versions = (await api.read.get("/api/stations/CP-LL/local-list")).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert (await api.admin.delete("/api/drivers/bob")).status_code == 204
    assert (await api.read.get("/api/tokens/B-1")).json()["driver_id"] is None


async def test_live_events_and_metrics(api: Api) -> None:
    async with (
        sse_events(api.read) as events,
        scripted_charger(api.ocpp_port, "CP-LIVE") as charger,
    ):
        assert (await next_event(events, "connection"))["data"]["state"] == "connected"
        assert (await next_event(events, "boot"))["data"]["vendor"] == "Acme"
        await charger.status(1, "Preparing")
        status = await next_event(events, "status")
        assert status["station_id"] == "CP-LIVE" and status["data"]["status"] == "Preparing"
        started = await charger.result(
            "StartTransaction",
            {"connectorId": 1, "idTag": "ANY", "meterStart": 0, "timestamp": ts(0)},
        )
        session = await next_event(events, "session_started")
        assert session["data"]["transaction_id"] == started["transactionId"]
        await charger.result(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": started["transactionId"],
                "meterValue": [
                    {
                        "timestamp": ts(60),
                        "sampledValue": [
                            {
                                "value": "150",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            },
                            {"value": "9.5", "measurand": "Power.Active.Import", "unit": "kW"},
                        ],
                    }
                ],
            },
        )
        meter = await next_event(events, "meter")
        assert meter["data"]["energy_wh"] == 150 and meter["data"]["power_w"] == 9500
        await charger.result(
            "StopTransaction",
            {"transactionId": started["transactionId"], "meterStop": 500, "timestamp": ts(120)},
        )
        assert (await next_event(events, "session_stopped"))["data"]["meter_stop_wh"] == 500

        text = (await api.anonymous.get("/metrics")).text
        assert 'csms_connected_chargers{version="ocpp1.6"} 1.0' in text
        assert (
            'csms_ocpp_messages_total{action="StartTransaction",direction="inbound",'
            'outcome="result"} 1.0' in text
        )
        assert (
            "csms_ledger_batch_events_count" in text and "csms_ledger_commit_seconds_bucket" in text
        )
        assert "csms_energy_delivered_wh_total 500.0" in text
        assert "csms_active_sessions 0.0" in text
        assert "csms_mailbox_depth_max 0.0" in text
        assert (
            'csms_ocpp_call_seconds_count{action="BootNotification",direction="inbound"} 1.0'
            in text
        )

    # A client that reconnects with Last-Event-ID gets what it missed.
    async with sse_events(api.read) as _:
        pass
    missed = []
    async with api.read.stream("GET", "/api/events", headers={"Last-Event-ID": "1"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                missed.append(json.loads(line[6:]))
                if missed[-1]["kind"] == "session_stopped":
                    break
    assert missed[0]["id"] == 2


async def test_bad_input_gets_a_clear_error_and_writes_nothing(api: Api) -> None:
    for method, path, body in [
        ("POST", "/api/stations", {"id": "CP", "security_profile": 9}),
        ("POST", "/api/stations", {"id": "CP", "extra": 1}),
        ("POST", "/api/tokens", {"id_tag": "T", "status": "Maybe"}),
        ("POST", "/api/drivers", {"id": "d", "payment_method": "wallet", "currency": "euro"}),
        ("PUT", "/api/alerts/settings", {"stuck_session_after_s": -1}),
    ]:
        answer = await api.admin.request(method, path, json=body)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["detail"]
    text = await api.admin.post(
        "/api/stations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert text.status_code == 422
    surrogate = await api.admin.post(
        "/api/tokens",
        content=b'{"id_tag": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert surrogate.status_code == 422
    assert (await api.read.get("/api/stations")).json() == []
    assert (await api.read.get("/api/tokens")).json() == []
    await trio.lowlevel.checkpoint()
