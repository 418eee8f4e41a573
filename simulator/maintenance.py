"""A virtual charger's file transfers: GetDiagnostics (upload a log over HTTP) and
UpdateFirmware (download over HTTP, install, reboot), with their status notifications.

Diagnostics: Uploading, then Uploaded or UploadFailed (after the requested retries).
Firmware: at retrieveDate, Downloading, then Downloaded or DownloadFailed; once no
transaction runs, Installing, Installed, and a reboot that boots with the new version
(named after the file: `.../fw-2.0.1.bin` installs "fw-2.0.1").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from csms.protocol import v16
from simulator.http_client import HttpError, http_request

if TYPE_CHECKING:
    from simulator.chargepoint import VirtualChargePoint
    from simulator.commands import CommandHandlers

MAX_LOG_LINES = 2000
_FIRMWARE_SUFFIXES = (".tar.gz", ".tgz", ".bin", ".img", ".zip", ".fw", ".hex")


async def _notify(cp: VirtualChargePoint, action: str, status: str) -> None:
    """Send a status notification and wait for its answer (lost if offline)."""
    try:
        await cp.call(action, {"status": status})
    except Exception:  # offline, or the CSMS refused it: the transfer goes on regardless
        return


def diagnostics_log(cp: VirtualChargePoint, payload: dict[str, Any]) -> bytes:
    """The charger's message log (within startTime..stopTime, if given) as text lines."""
    start = v16.parse_time(payload["startTime"]) if "startTime" in payload else None
    stop = v16.parse_time(payload["stopTime"]) if "stopTime" in payload else None
    lines = [
        f"station {cp.station_id} firmware {cp.firmware_version} boots {cp.boots}",
    ]
    for m in cp.messages[-MAX_LOG_LINES:]:
        if (start is not None and m.at < start) or (stop is not None and m.at > stop):
            continue
        lines.append(
            f"{v16.iso(m.at)} {m.direction} {m.kind} {m.action} {m.message_id} {m.size}B {m.note}"
        )
    return ("\n".join(lines) + "\n").encode()


async def upload_diagnostics(
    cp: VirtualChargePoint, payload: dict[str, Any], file_name: str
) -> None:
    location: str = payload["location"]
    url = location + file_name if location.endswith("/") else location
    body = diagnostics_log(cp, payload)
    retries, interval = payload.get("retries", 0), payload.get("retryInterval", 0)
    cp.diagnostics_status = "Uploading"
    await _notify(cp, "DiagnosticsStatusNotification", "Uploading")
    outcome = "UploadFailed"
    for attempt in range(max(retries, 0) + 1):
        try:
            response = await http_request("PUT", url, body)
        except HttpError:
            response = None
        if response is not None and response.ok:
            outcome = "Uploaded"
            break
        if attempt < retries:
            await trio.sleep(interval)
    await _notify(cp, "DiagnosticsStatusNotification", outcome)
    cp.diagnostics_status = "Idle"


def firmware_version_of(location: str, current: str) -> str:
    name = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in _FIRMWARE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[:50] or f"{current}+1"


async def update_firmware(
    cp: VirtualChargePoint, payload: dict[str, Any], commands: CommandHandlers
) -> None:
    location: str = payload["location"]
    wait = v16.parse_time(payload["retrieveDate"]).timestamp() - cp.epoch()
    if wait > 0:
        await trio.sleep(wait)
    retries, interval = payload.get("retries", 0), payload.get("retryInterval", 0)
    downloaded = False
    for attempt in range(max(retries, 0) + 1):
        cp.firmware_status = "Downloading"
        await _notify(cp, "FirmwareStatusNotification", "Downloading")
        try:
            response = await http_request("GET", location)
        except HttpError:
            response = None
        if response is not None and response.ok:
            downloaded = True
            break
        if attempt < retries:
            await trio.sleep(interval)
    if not downloaded:
        cp.firmware_status = "Idle"
        await _notify(cp, "FirmwareStatusNotification", "DownloadFailed")
        return
    cp.firmware_status = "Downloaded"
    await _notify(cp, "FirmwareStatusNotification", "Downloaded")
    # A real charger installs between sessions, not under a car that is charging.
    await cp.wait_for(lambda: all(c.tx is None for c in cp.connectors.values()))
    cp.firmware_status = "Installing"
    await _notify(cp, "FirmwareStatusNotification", "Installing")
    await trio.sleep(cp.timing.firmware_install_s)
    commands.firmware_pending = firmware_version_of(location, cp.firmware_version)
    cp.firmware_status = "Installed"
    await _notify(cp, "FirmwareStatusNotification", "Installed")
    cp.firmware_status = "Idle"
    await cp.restart_after("Reboot", flush=True)
