"""What a virtual charger says on the wire, per OCPP version: the `Dialect` port.

The charger's logic (sessions, metering, the link's ordered transaction queue, faults) is
the same whatever the version; a dialect turns its decisions into the version's messages
and reads the version's answers back: boot, status, authorization, the start, meter values
and end of a transaction, and how a remote start is asked for. Sampled values go in and
`idTagInfo`s come out in 1.6's shape, the charger's own vocabulary (so are stop reasons).
`Ocpp16` is here; `simulator.v201_dialect.Ocpp201` speaks 2.0.1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from csms.protocol import v16
from simulator.v201_dialect import Ocpp201

if TYPE_CHECKING:
    from simulator.chargepoint import ChargerInfo
    from simulator.connectors import ChargeSession

#: (action, payload) of one message.
Message = tuple[str, dict[str, Any]]


class Dialect(Protocol):
    version: str
    #: The actions a CSMS may call on the charger.
    csms_actions: frozenset[str]
    #: The actions of the transaction queue (the lost-reply fault looks for these).
    transaction_actions: frozenset[str]

    def boot_payload(self, info: ChargerInfo, firmware_version: str) -> dict[str, Any]: ...

    def status(
        self,
        connector_id: int,
        status: str,
        error_code: str,
        timestamp: str,
        previous: str | None,
        force: bool,
    ) -> dict[str, Any] | None:
        """The StatusNotification payload for a connector's (1.6) status, or None when the
        version has nothing new to say (`previous` is the status last reported)."""
        ...

    def authorize_payload(self, id_tag: str) -> dict[str, Any]: ...

    def id_tag_info(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        """The answer's token status in 1.6 `idTagInfo` shape (None when it has none)."""
        ...

    def start(
        self,
        tx: ChargeSession,
        reservation_id: int | None,
        remote_start_id: int | None,
        offline: bool,
    ) -> Message: ...

    def meter_values(
        self,
        connector_id: int,
        tx: ChargeSession | None,
        meter_values: list[dict[str, Any]],
        context: str,
        offline: bool,
    ) -> tuple[str, dict[str, Any], bool]:
        """The message of (1.6-shaped) meter values, and whether it belongs to the
        transaction queue."""
        ...

    def stop(
        self,
        tx: ChargeSession,
        reason: str,
        id_tag: str | None,
        begin_values: list[dict[str, Any]],
        end_values: list[dict[str, Any]],
        offline: bool,
    ) -> Message: ...

    def csms_transaction_id(self, action: str, answer: dict[str, Any]) -> int | None:
        """The CSMS's id for a transaction, from the answer to its start (None if the
        version has none: 2.x stations number their transactions themselves)."""
        ...


class Ocpp16:
    """OCPP 1.6J."""

    version = v16.VERSION
    csms_actions = v16.CSMS_ACTIONS
    transaction_actions = frozenset({"StartTransaction", "MeterValues", "StopTransaction"})

    def boot_payload(self, info: ChargerInfo, firmware_version: str) -> dict[str, Any]:
        payload = {
            "chargePointVendor": info.vendor,
            "chargePointModel": info.model,
            "firmwareVersion": firmware_version,
        }
        if info.serial_number:
            payload["chargePointSerialNumber"] = info.serial_number
        return payload

    def status(
        self,
        connector_id: int,
        status: str,
        error_code: str,
        timestamp: str,
        previous: str | None,
        force: bool,
    ) -> dict[str, Any] | None:
        return {
            "connectorId": connector_id,
            "errorCode": error_code,
            "status": status,
            "timestamp": timestamp,
        }

    def authorize_payload(self, id_tag: str) -> dict[str, Any]:
        return {"idTag": id_tag}

    def id_tag_info(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        info: dict[str, Any] | None = reply.get("idTagInfo")
        return info

    def start(
        self,
        tx: ChargeSession,
        reservation_id: int | None,
        remote_start_id: int | None,
        offline: bool,
    ) -> Message:
        record = tx.record
        payload: dict[str, Any] = {
            "connectorId": record.connector_id,
            "idTag": record.id_tag,
            "meterStart": record.meter_start_wh,
            "timestamp": v16.iso(record.started_at),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return "StartTransaction", payload

    def meter_values(
        self,
        connector_id: int,
        tx: ChargeSession | None,
        meter_values: list[dict[str, Any]],
        context: str,
        offline: bool,
    ) -> tuple[str, dict[str, Any], bool]:
        payload: dict[str, Any] = {"connectorId": connector_id, "meterValue": meter_values}
        if tx is not None and context != "Trigger":
            return "MeterValues", payload, True
        if tx is not None and tx.transaction_id is not None:
            payload["transactionId"] = tx.transaction_id
        return "MeterValues", payload, False

    def stop(
        self,
        tx: ChargeSession,
        reason: str,
        id_tag: str | None,
        begin_values: list[dict[str, Any]],
        end_values: list[dict[str, Any]],
        offline: bool,
    ) -> Message:
        record = tx.record
        assert record.stopped_at is not None and record.meter_stop_wh is not None
        data = []
        if begin_values:
            data.append({"timestamp": v16.iso(record.started_at), "sampledValue": begin_values})
        if end_values:
            data.append({"timestamp": v16.iso(record.stopped_at), "sampledValue": end_values})
        payload: dict[str, Any] = {
            # The CSMS's id is filled in when the message is sent (see `link`).
            "transactionId": record.transaction_id or 0,
            "meterStop": record.meter_stop_wh,
            "timestamp": v16.iso(record.stopped_at),
            "reason": reason,
        }
        if id_tag is not None:
            payload["idTag"] = id_tag
        if data:
            payload["transactionData"] = data
        return "StopTransaction", payload

    def csms_transaction_id(self, action: str, answer: dict[str, Any]) -> int | None:
        return int(answer["transactionId"]) if action == "StartTransaction" else None


def dialect_for(version: str) -> Dialect:
    """The dialect of an OCPP subprotocol name (`ocpp1.6`, `ocpp2.0.1`)."""
    if version == v16.VERSION:
        return Ocpp16()
    if version == Ocpp201.version:
        return Ocpp201()
    raise ValueError(f"the simulator's chargers do not speak {version!r}")


def remote_start_call(version: str, connector_id: int, id_tag: str, remote_id: int) -> Message:
    """The CSMS's call that starts a session from the app, in the station's version."""
    if version == v16.VERSION:
        return "RemoteStartTransaction", {"connectorId": connector_id, "idTag": id_tag}
    return "RequestStartTransaction", {
        "idToken": {"idToken": id_tag, "type": "Central"},
        "remoteStartId": remote_id,
        "evseId": connector_id,
    }
