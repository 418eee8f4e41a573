"""OCPP 2.0.1 as a virtual charger speaks it (the `Dialect` of `simulator.dialect`).

A transaction is a run of TransactionEvents under the charger's own id (`TX` + its start
in epoch milliseconds + `-` + the EVSE), numbered from 0: Started with the Transaction.Begin
register, an Updated for every meter value taken during it (and for the Interruption
readings around a meter reset), Ended with the Transaction.End register. Each event is
written when it happens (its `offline` flag says whether the charger was offline then) and
goes through the link's ordered transaction queue like any 1.6 transaction message, so a
retried event keeps its sequence number. Connectors are EVSEs with one connector each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.protocol import v201
from csms.protocol.v16 import iso

if TYPE_CHECKING:
    from simulator.chargepoint import ChargerInfo
    from simulator.connectors import ChargeSession
    from simulator.dialect import Message

_REGISTER = "Energy.Active.Import.Register"
#: 1.6 connector statuses as 2.0.1 connector statuses.
_STATUSES = {
    "Available": "Available",
    "Preparing": "Occupied",
    "Charging": "Occupied",
    "SuspendedEV": "Occupied",
    "SuspendedEVSE": "Occupied",
    "Finishing": "Occupied",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}
#: The charger's (1.6) stop reasons as 2.0.1 stopped reasons and the trigger of the Ended.
_STOPS = {
    "EVDisconnected": ("EVDisconnected", "EVDeparted"),
    "Local": ("Local", "StopAuthorized"),
    "Remote": ("Remote", "RemoteStop"),
    "DeAuthorized": ("DeAuthorized", "Deauthorized"),
    "HardReset": ("ImmediateReset", "ResetCommand"),
    "SoftReset": ("Reboot", "ResetCommand"),
    "Reboot": ("Reboot", "AbnormalCondition"),
    "PowerLoss": ("PowerLoss", "AbnormalCondition"),
    "EmergencyStop": ("EmergencyStop", "AbnormalCondition"),
    "UnlockCommand": ("Other", "UnlockCommand"),
    "Other": ("Other", "AbnormalCondition"),
}
#: The trigger of an Updated event by the context of its meter values.
_TRIGGERS = {
    "Sample.Periodic": "MeterValuePeriodic",
    "Sample.Clock": "MeterValueClock",
    "Trigger": "Trigger",
}


def sampled_values(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """1.6 sampled values (text values, `unit`) as 2.0.1 ones (numbers, `unitOfMeasure`)."""
    converted = []
    for value in values:
        number = float(value["value"])
        out: dict[str, Any] = {
            "value": int(number) if number.is_integer() else number,
            "context": value["context"],
            "measurand": value["measurand"],
        }
        if "location" in value:
            out["location"] = value["location"]
        if "phase" in value:
            out["phase"] = value["phase"]
        if "unit" in value:
            out["unitOfMeasure"] = {"unit": value["unit"]}
        converted.append(out)
    return converted


def _meter_values(meter_values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"timestamp": mv["timestamp"], "sampledValue": sampled_values(mv["sampledValue"])}
        for mv in meter_values
    ]


def _with_register(values: list[dict[str, Any]], wh: int, context: str) -> list[dict[str, Any]]:
    """`values` with the energy register first: a 2.0.1 start and end always carry it."""
    others = [v for v in values if v["measurand"] != _REGISTER or "phase" in v]
    register = {
        "value": str(wh),
        "context": context,
        "measurand": _REGISTER,
        "location": "Outlet",
        "unit": "Wh",
    }
    return [register, *others]


class Ocpp201:
    """OCPP 2.0.1."""

    version = v201.VERSION
    csms_actions = v201.CSMS_ACTIONS
    transaction_actions = frozenset({"TransactionEvent"})

    def boot_payload(self, info: ChargerInfo, firmware_version: str) -> dict[str, Any]:
        station: dict[str, Any] = {
            "model": info.model,
            "vendorName": info.vendor,
            "firmwareVersion": firmware_version,
        }
        if info.serial_number:
            station["serialNumber"] = info.serial_number
        return {"chargingStation": station, "reason": "PowerUp"}

    def status(
        self,
        connector_id: int,
        status: str,
        error_code: str,
        timestamp: str,
        previous: str | None,
        force: bool,
    ) -> dict[str, Any] | None:
        if connector_id == 0:
            return None  # 2.0.1 reports connectors only; the station's state is its EVSEs'
        mapped = _STATUSES[status]
        if not force and previous is not None and _STATUSES.get(previous) == mapped:
            return None
        return {
            "timestamp": timestamp,
            "connectorStatus": mapped,
            "evseId": connector_id,
            "connectorId": 1,
        }

    def authorize_payload(self, id_tag: str) -> dict[str, Any]:
        return {"idToken": {"idToken": id_tag, "type": "ISO14443"}}

    def id_tag_info(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        info = reply.get("idTokenInfo")
        if info is None:
            return None
        out: dict[str, Any] = {"status": info["status"]}
        if "cacheExpiryDateTime" in info:
            out["expiryDate"] = info["cacheExpiryDateTime"]
        if "groupIdToken" in info:
            out["parentIdTag"] = info["groupIdToken"]["idToken"]
        return out

    def _event(
        self,
        tx: ChargeSession,
        event_type: str,
        trigger: str,
        timestamp: str,
        meter_values: list[dict[str, Any]],
        offline: bool,
        **info: Any,
    ) -> dict[str, Any]:
        seq_no, tx.seq_no = tx.seq_no, tx.seq_no + 1
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": timestamp,
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": tx.station_tx_id, **info},
        }
        if offline:
            payload["offline"] = True
        if meter_values:
            payload["meterValue"] = meter_values
        return payload

    def start(
        self,
        tx: ChargeSession,
        reservation_id: int | None,
        remote_start_id: int | None,
        offline: bool,
    ) -> Message:
        record = tx.record
        started = iso(record.started_at)
        tx.station_tx_id = record.station_tx_id = (
            f"TX{int(record.started_at.timestamp() * 1000)}-{record.connector_id}"
        )
        begin = _with_register(tx.begin_values, record.meter_start_wh, "Transaction.Begin")
        info: dict[str, Any] = {"chargingState": "Charging"}
        if remote_start_id is not None:
            info["remoteStartId"] = remote_start_id
        payload = self._event(
            tx,
            "Started",
            "RemoteStart" if record.via_app else "Authorized",
            started,
            _meter_values([{"timestamp": started, "sampledValue": begin}]),
            offline,
            **info,
        )
        payload["evse"] = {"id": record.connector_id, "connectorId": 1}
        payload["idToken"] = {
            "idToken": record.id_tag,
            "type": "Central" if record.via_app else "ISO14443",
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return "TransactionEvent", payload

    def meter_values(
        self,
        connector_id: int,
        tx: ChargeSession | None,
        meter_values: list[dict[str, Any]],
        context: str,
        offline: bool,
    ) -> tuple[str, dict[str, Any], bool]:
        if tx is None:
            return (
                "MeterValues",
                {"evseId": connector_id, "meterValue": _meter_values(meter_values)},
                False,
            )
        payload = self._event(
            tx,
            "Updated",
            _TRIGGERS.get(context, "AbnormalCondition"),
            meter_values[0]["timestamp"],
            _meter_values(meter_values),
            offline,
        )
        return "TransactionEvent", payload, True

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
        stopped = iso(record.stopped_at)
        stopped_reason, trigger = _STOPS.get(reason, ("Other", "AbnormalCondition"))
        end = _with_register(end_values, record.meter_stop_wh, "Transaction.End")
        payload = self._event(
            tx,
            "Ended",
            "StopAuthorized" if id_tag is not None else trigger,
            stopped,
            _meter_values([{"timestamp": stopped, "sampledValue": end}]),
            offline,
            stoppedReason=stopped_reason,
            chargingState="Idle",
        )
        if id_tag is not None:
            payload["idToken"] = {"idToken": id_tag, "type": "ISO14443"}
        return "TransactionEvent", payload

    def csms_transaction_id(self, action: str, answer: dict[str, Any]) -> int | None:
        return None
