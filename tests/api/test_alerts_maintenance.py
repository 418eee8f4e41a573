"""Alerts raised from live traffic, acknowledged and cleared through the API; and remote
maintenance for real: the simulator's virtual chargers upload diagnostics to the CSMS and
download firmware from it over HTTP in a campaign; configuration snapshots and their diff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from api_harness import Api, running_api, scripted_charger, wait_for
from support.charger import ts
from support.settings import make_settings

from csms.config import Settings
from simulator.chargepoint import ChargerInfo, Timing, VirtualChargePoint
from simulator.transport import url_connector


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings: Settings = make_settings(tmp_path, call_timeout=5.0, heartbeat_interval=60)
    async with running_api(settings) as running:
        yield running


async def _open_alerts(api: Api, kind: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = (
        await api.read.get("/api/alerts", params={"state": "open", "kind": kind})
    ).json()
    return alerts


async def test_alerts_are_raised_acknowledged_and_cleared(api: Api) -> None:
    settings = {"stuck_session_after_s": 0.5, "boot_loop_boots": 3, "offline_grace_s": 0.2}
    assert (await api.admin.put("/api/alerts/settings", json=settings)).status_code == 200

    async with scripted_charger(api.ocpp_port, "CP-AL") as charger:
        # A fault raises an alert; an operator acknowledges it; NoError clears it.
        await charger.status(1, "Faulted", "GroundFailure")
        (fault,) = await wait_for(lambda: _open_alerts(api, "connector_faulted"))
        assert fault["station_id"] == "CP-AL" and "GroundFailure" in fault["message"]
        acked = (await api.operate.post(f"/api/alerts/{fault['id']}/ack")).json()
        assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "operate-key"
        await charger.status(1, "Available")
        await wait_for(lambda: _no_open(api, "connector_faulted"))
        assert (await api.read.get(f"/api/alerts/{fault['id']}")).json()["cleared_by"] == "auto"

        # A session with no meter values for longer than the threshold is stuck.
        started = await charger.result(
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": ts(0)},
        )
        (stuck,) = await wait_for(lambda: _open_alerts(api, "session_stuck"))
        assert stuck["subject"] == str(started["transactionId"])
        await charger.result(
            "StopTransaction",
            {"transactionId": started["transactionId"], "meterStop": 10, "timestamp": ts(60)},
        )
        await wait_for(lambda: _no_open(api, "session_stuck"))

        # Failed firmware updates, and boot loops (cleared by hand).
        await charger.result("FirmwareStatusNotification", {"status": "DownloadFailed"})
        await wait_for(lambda: _open_alerts(api, "firmware_failed"))
        await charger.result("FirmwareStatusNotification", {"status": "Installed"})
        await wait_for(lambda: _no_open(api, "firmware_failed"))
        await charger.boot()
        await charger.boot()
        (loop,) = await wait_for(lambda: _open_alerts(api, "boot_loop"))
        cleared = (await api.operate.post(f"/api/alerts/{loop['id']}/clear")).json()
        assert cleared["state"] == "cleared" and cleared["cleared_by"] == "operate-key"
        assert (await api.operate.post(f"/api/alerts/{loop['id']}/ack")).status_code == 409
        assert (await api.read.post(f"/api/alerts/{loop['id']}/clear")).status_code == 403
        assert (await api.operate.post("/api/alerts/999999/ack")).status_code == 404

    # The station left and did not come back within the grace: offline; back: cleared.
    (offline,) = await wait_for(lambda: _open_alerts(api, "station_offline"))
    assert offline["station_id"] == "CP-AL"
    async with scripted_charger(api.ocpp_port, "CP-AL"):
        await wait_for(lambda: _no_open(api, "station_offline"))


async def _no_open(api: Api, kind: str) -> bool:
    return not await _open_alerts(api, kind)


def _virtual(api: Api, station: str, firmware: str = "1.0.0") -> VirtualChargePoint:
    return VirtualChargePoint(
        station,
        url_connector(f"ws://127.0.0.1:{api.ocpp_port}/ocpp", station),
        info=ChargerInfo(firmware_version=firmware),
        timing=Timing(reboot_delay_s=0.1, reconnect_delay_s=0.1, firmware_install_s=0.1),
    )


async def test_diagnostics_upload_and_firmware_campaign_with_virtual_chargers(api: Api) -> None:
    chargers = [_virtual(api, f"VCP-{n}") for n in range(3)]
    async with trio.open_nursery() as nursery:
        for charger in chargers:
            nursery.start_soon(charger.run)
        for charger in chargers:
            with trio.fail_after(10):
                await charger.wait_booted()

        # Diagnostics: the charger PUTs its log to the location the CSMS gave it.
        asked = await api.operate.post("/api/stations/VCP-0/diagnostics", json={"retries": 1})
        assert asked.status_code == 200, asked.text
        assert asked.json()["location"].startswith(api.base_url + "/uploads/")
        (upload,) = await wait_for(lambda: _json(api, "/api/stations/VCP-0/uploads"), timeout=15)
        assert upload["file_name"].startswith("VCP-0-") and upload["size"] > 0
        content = (await api.read.get(f"/api/uploads/{upload['id']}")).text
        assert content.startswith("station VCP-0 firmware 1.0.0")
        bogus = await api.anonymous.put("/uploads/not-a-slot/x.log", content=b"x")
        assert bogus.status_code == 404

        # Firmware: hosted here, rolled out one station at a time, progress from the
        # chargers' FirmwareStatusNotifications.
        image = b"\x7fFW" * 1000
        hosted = await api.admin.put("/api/firmware/fw-2.0.0.bin", content=image)
        assert hosted.status_code == 201 and hosted.json()["size"] == len(image)
        assert (await api.anonymous.get("/firmware/fw-2.0.0.bin")).content == image
        missing = await api.operate.post(
            "/api/campaigns", json={"firmware": "nope.bin", "stations": ["VCP-0"]}
        )
        assert missing.status_code == 404
        created = await api.operate.post(
            "/api/campaigns",
            json={
                "firmware": "fw-2.0.0.bin",
                "stations": ["VCP-0", "VCP-1", "VCP-2"],
                "batch_size": 1,
                "retries": 0,
            },
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]

        async def finished() -> dict[str, Any] | None:
            campaign = await _json(api, f"/api/campaigns/{campaign_id}")
            return campaign if campaign["state"] == "finished" else None

        campaign = await wait_for(finished, timeout=40)
        assert {t["station_id"]: t["state"] for t in campaign["targets"]} == {
            "VCP-0": "succeeded",
            "VCP-1": "succeeded",
            "VCP-2": "succeeded",
        }
        assert campaign["failures"] == []
        for charger in chargers:
            await wait_for(lambda c=charger: _booted_with(c, "fw-2.0.0"), timeout=10)
        stations = {s["id"]: s for s in await _json(api, "/api/stations")}
        assert stations["VCP-1"]["firmware_status"] == "Installed"

        # Configuration: a snapshot, and where it differs from the desired values.
        await api.admin.put(
            "/api/configuration/desired",
            json={"values": {"HeartbeatInterval": "120", "NoSuchKey": "1"}},
        )
        await api.admin.put(
            "/api/stations/VCP-0/configuration/desired", json={"values": {"NoSuchKey": None}}
        )
        snapshot = await api.operate.post("/api/stations/VCP-0/configuration/snapshot")
        assert snapshot.status_code == 200, snapshot.text
        config = snapshot.json()
        keys = {k["key"] for k in config["latest"]["configuration"]["configurationKey"]}
        assert "MeterValueSampleInterval" in keys
        assert config["desired"] == {"HeartbeatInterval": "120", "NoSuchKey": "1"}
        problems = {d["key"]: d["problem"] for d in config["diff"]}
        assert problems == {"HeartbeatInterval": "differs", "NoSuchKey": "missing"}
        nursery.cancel_scope.cancel()


async def _booted_with(charger: VirtualChargePoint, version: str) -> bool:
    await trio.lowlevel.checkpoint()
    return charger.firmware_version == version and charger.online


async def _json(api: Api, path: str) -> Any:
    answer = await api.read.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()
