"""OCPP 2.0.1 stations through the operator API: firmware campaigns that mix them with 1.6
stations (each sent UpdateFirmware of its own version, progress from its
FirmwareStatusNotifications), and the device model a station reports after GetBaseReport,
listed and filtered; its store read on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, ScriptedCharger, running_api, scripted_charger, wait_for
from support.charger import ts
from support.postgres import fresh_database
from support.settings import make_settings

from csms.domain.events import DeviceVariable
from csms.runtime.campaigns import firmware_request_id
from csms.storage.sqlite_api import ApiStore
from csms.storage.sqlite_ledger import SqliteLedgerTx

V201 = "ocpp2.0.1"
#: 1.6's UpdateFirmware.conf is empty (the harness answers {"status": "Accepted"} otherwise).
ANSWERS_16: dict[str, Any] = {"UpdateFirmware": {}}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(make_settings(tmp_path, call_timeout=5.0)) as running:
        yield running


async def boot_2x(charger: ScriptedCharger) -> None:
    answer = await charger.result(
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"model": "M-2", "vendorName": "Acme"}},
    )
    assert answer["status"] == "Accepted"


async def received(charger: ScriptedCharger, action: str) -> dict[str, Any]:
    """The payload of the first `action` the CSMS sent the charger (waiting for it)."""

    async def probe() -> dict[str, Any] | None:
        return next((p for a, p in charger.received if a == action), None)

    found: dict[str, Any] = await wait_for(probe)
    return found


async def _json(api: Api, path: str, **params: str) -> Any:
    answer = await api.read.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _campaign(api: Api, stations: list[str]) -> int:
    created = await api.operate.post(
        "/api/campaigns",
        json={"firmware": "fw-3.bin", "stations": stations, "batch_size": 5, "retries": 2},
    )
    assert created.status_code == 201, created.text
    campaign_id: int = created.json()["id"]
    return campaign_id


async def _finished(api: Api, campaign_id: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        campaign: dict[str, Any] = await _json(api, f"/api/campaigns/{campaign_id}")
        return campaign if campaign["state"] == "finished" else None

    finished: dict[str, Any] = await wait_for(probe, timeout=20)
    return finished


async def test_a_campaign_updates_16_and_201_stations_each_in_its_own_version(api: Api) -> None:
    assert (await api.admin.put("/api/firmware/fw-3.bin", content=b"FW3")).status_code == 201
    port = api.ocpp_port
    async with (
        scripted_charger(port, "CP-16", ANSWERS_16) as old,
        scripted_charger(port, "CP-201", subprotocol=V201, boot=False) as new,
    ):
        await boot_2x(new)
        campaign_id = await _campaign(api, ["CP-16", "CP-201"])

        sent_16 = await received(old, "UpdateFirmware")
        assert sent_16["location"] == f"{api.base_url}/firmware/fw-3.bin"
        assert {"retrieveDate", "retries", "retryInterval"} <= sent_16.keys()
        assert "firmware" not in sent_16 and "requestId" not in sent_16

        sent_201 = await received(new, "UpdateFirmware")
        assert sent_201["firmware"]["location"] == f"{api.base_url}/firmware/fw-3.bin"
        assert sent_201["firmware"]["retrieveDateTime"].endswith("Z")
        assert sent_201["retries"] == 2
        # The first attempt's id, which any node can tell from the stored target.
        request_id = sent_201["requestId"]
        assert request_id == firmware_request_id(campaign_id, 1)

        for status in ("Downloading", "Downloaded", "Installing"):
            await new.result(
                "FirmwareStatusNotification", {"status": status, "requestId": request_id}
            )
        await old.result("FirmwareStatusNotification", {"status": "Installed"})

        async def in_progress_with(status: str) -> bool:
            targets = (await _json(api, f"/api/campaigns/{campaign_id}"))["targets"]
            (target,) = [t for t in targets if t["station_id"] == "CP-201"]
            return bool(target["firmware_status"] == status and target["state"] == "in_progress")

        await wait_for(lambda: in_progress_with("Installing"))
        # A status about another request (an older update) does not count for this one.
        await new.result(
            "FirmwareStatusNotification", {"status": "InstallationFailed", "requestId": 7}
        )
        await new.result("Heartbeat", {})  # processed after the stale status
        assert await in_progress_with("Installing")
        await new.result(
            "FirmwareStatusNotification", {"status": "Installed", "requestId": request_id}
        )
        campaign = await _finished(api, campaign_id)
    assert {t["station_id"]: t["state"] for t in campaign["targets"]} == {
        "CP-16": "succeeded",
        "CP-201": "succeeded",
    }
    assert campaign["failures"] == []


async def test_a_201_failure_status_or_refusal_fails_its_target_and_a_retry_gets_a_new_id(
    api: Api,
) -> None:
    assert (await api.admin.put("/api/firmware/fw-3.bin", content=b"FW3")).status_code == 201
    port = api.ocpp_port
    refusing = {"UpdateFirmware": {"status": "InvalidCertificate"}}
    async with (
        scripted_charger(port, "CP-SIG", subprotocol=V201, boot=False) as unsigned,
        scripted_charger(port, "CP-REF", refusing, subprotocol=V201, boot=False) as refuser,
        scripted_charger(port, "CP-OK16", ANSWERS_16) as fine,
    ):
        await boot_2x(unsigned)
        await boot_2x(refuser)
        campaign_id = await _campaign(api, ["CP-SIG", "CP-REF", "CP-OK16"])
        request_id = (await received(unsigned, "UpdateFirmware"))["requestId"]
        await unsigned.result(
            "FirmwareStatusNotification", {"status": "Downloaded", "requestId": request_id}
        )
        await unsigned.result(
            "FirmwareStatusNotification", {"status": "InvalidSignature", "requestId": request_id}
        )
        await received(fine, "UpdateFirmware")
        await fine.result("FirmwareStatusNotification", {"status": "Installed"})
        campaign = await _finished(api, campaign_id)
        by_station = {t["station_id"]: t for t in campaign["targets"]}
        assert by_station["CP-OK16"]["state"] == "succeeded"
        assert by_station["CP-SIG"]["state"] == "failed"
        assert by_station["CP-SIG"]["error"] == "InvalidSignature"
        assert by_station["CP-REF"]["state"] == "failed"
        assert "InvalidCertificate" in by_station["CP-REF"]["error"]
        assert {f["station_id"] for f in campaign["failures"]} == {"CP-SIG", "CP-REF"}

        # A retry sends the station a second UpdateFirmware with the next attempt's id.
        unsigned.received.clear()
        retried = await api.operate.post(f"/api/campaigns/{campaign_id}/retry")
        assert retried.status_code == 200, retried.text
        again = await received(unsigned, "UpdateFirmware")
        assert again["requestId"] == firmware_request_id(campaign_id, 2) != request_id


def _report(request_id: int) -> dict[str, Any]:
    def item(component: dict[str, Any], variable: str, value: str, **extra: Any) -> dict[str, Any]:
        return {
            "component": component,
            "variable": {"name": variable},
            "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
            "variableCharacteristics": {
                "dataType": "integer",
                "supportsMonitoring": False,
                **extra,
            },
        }

    return {
        "requestId": request_id,
        "generatedAt": ts(),
        "seqNo": 0,
        "reportData": [
            item({"name": "OCPPCommCtrlr"}, "HeartbeatInterval", "300", unit="s"),
            item({"name": "EVSE", "evse": {"id": 1}}, "Power", "22000", unit="W"),
            item(
                {"name": "Connector", "instance": "left", "evse": {"id": 1, "connectorId": 1}},
                "Available",
                "1",
            ),
        ],
    }


async def test_the_device_model_is_refreshed_listed_and_filtered(api: Api) -> None:
    path = "/api/stations/CP-DM/device-model"
    async with scripted_charger(api.ocpp_port, "CP-DM", subprotocol=V201, boot=False) as station:
        await boot_2x(station)
        assert await _json(api, path) == []
        assert (await api.read.post(f"{path}/refresh")).status_code == 403

        refreshed = await api.operate.post(f"{path}/refresh")
        assert refreshed.status_code == 200, refreshed.text
        request_id = refreshed.json()["request_id"]
        asked = await received(station, "GetBaseReport")
        assert asked == {"requestId": request_id, "reportBase": "FullInventory"}
        assert await station.result("NotifyReport", _report(request_id)) == {}

        rows = await wait_for(lambda: _json(api, path))
        assert [(r["component"], r["variable"], r["value"]) for r in rows] == [
            ("Connector", "Available", "1"),
            ("EVSE", "Power", "22000"),
            ("OCPPCommCtrlr", "HeartbeatInterval", "300"),
        ]
        connector = rows[0]
        assert connector["component_instance"] == "left"
        assert (connector["evse_id"], connector["connector_id"]) == (1, 1)
        assert connector["attribute_type"] == "Actual" and connector["mutability"] == "ReadWrite"
        assert connector["data_type"] == "integer" and connector["report_id"] == request_id
        heartbeat = rows[2]
        assert heartbeat["component_instance"] is None and heartbeat["evse_id"] is None
        assert heartbeat["unit"] == "s" and heartbeat["updated_at"]

        (power,) = await _json(api, path, component="EVSE")
        assert power["variable"] == "Power" and power["unit"] == "W"
        (interval,) = await _json(api, path, variable="HeartbeatInterval")
        assert interval["value"] == "300"
        assert await _json(api, path, component="EVSE", variable="HeartbeatInterval") == []

        # The station refuses a report: the operator is told why.
        station.answers["GetBaseReport"] = {"status": "NotSupported"}
        refused = await api.operate.post(f"{path}/refresh")
        assert refused.status_code == 502
        assert "NotSupported" in refused.json()["detail"]["message"]

    # Bad requests.
    too_long = await api.read.get(path, params={"component": "x" * 51})
    assert too_long.status_code == 422
    assert (await api.read.get(path, params={"variable": ""})).status_code == 422
    assert (await api.read.get("/api/stations/NOPE/device-model")).status_code == 404
    assert (await api.operate.post("/api/stations/NOPE/device-model/refresh")).status_code == 404
    assert (await api.anonymous.get(path)).status_code == 401
    offline = await api.operate.post(f"{path}/refresh")
    assert offline.status_code == 409 and "offline" in offline.json()["detail"]
    # What the station reported stays listed while it is away.
    assert len(await _json(api, path)) == 3
    async with scripted_charger(api.ocpp_port, "CP-16DM"):
        old = await api.operate.post("/api/stations/CP-16DM/device-model/refresh")
        assert old.status_code == 409 and "ocpp1.6" in old.json()["detail"]
        assert await _json(api, "/api/stations/CP-16DM/device-model") == []


# -- the store read on either backend -----------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiStore]:
    if request.param == "sqlite":
        opened = ApiStore(str(tmp_path / "csms.db"))
        yield opened
        opened.close()
        return
    with fresh_database() as url:
        opened = ApiStore(url)
        yield opened
        opened.close()


def _variable(component: str, variable: str, value: str, evse: int | None = None) -> DeviceVariable:
    return DeviceVariable(
        component, None, evse, None, variable, None, "Actual", value, "ReadOnly", "string", None
    )


def test_device_variables_filter_on_either_backend(store: ApiStore) -> None:
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    variables = [
        _variable("EVSE", "Power", "11000", evse=2),
        _variable("EVSE", "Power", "22000", evse=1),
        _variable("EVSE", "AvailabilityState", "Available", evse=1),
        _variable("SecurityCtrlr", "OrganizationName", "50% off? 'quoted'"),
    ]
    with store._write():
        tx = SqliteLedgerTx(store._db)
        tx.save_device_variables("CP-A", 4, variables, now)
        tx.save_device_variables("CP-B", 9, [_variable("EVSE", "Power", "7400", evse=1)], now)

    every = store.device_variables("CP-A")
    assert [(r["component"], r["evse_id"], r["variable"], r["value"]) for r in every] == [
        ("EVSE", 1, "AvailabilityState", "Available"),
        ("EVSE", 1, "Power", "22000"),
        ("EVSE", 2, "Power", "11000"),
        ("SecurityCtrlr", None, "OrganizationName", "50% off? 'quoted'"),
    ]
    assert all(r["report_id"] == 4 and r["component_instance"] is None for r in every)
    power = store.device_variables("CP-A", variable="Power")
    assert [r["value"] for r in power] == ["22000", "11000"]
    evse = store.device_variables("CP-A", component="EVSE", variable="AvailabilityState")
    assert [r["value"] for r in evse] == ["Available"]
    assert store.device_variables("CP-A", component="evse") == []  # names are exact
    assert store.device_variables("CP-C") == []
