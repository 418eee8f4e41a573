"""How the Locust charger answers CSMS-initiated OCPP 1.6 calls, the way a charger does.

Owns: one handler per supported action (Reset, RemoteStart/StopTransaction,
ChangeConfiguration, GetConfiguration, TriggerMessage, UnlockConnector, ChangeAvailability,
ClearCache, DataTransfer), schema validation of the request, and the CALLERROR for the rest:
`NotSupported` for a 1.6 action this charger does not do (reservations, smart charging,
local lists, firmware and diagnostics), `NotImplemented` for an unknown action. Handlers only
change the charger's state (`ChargerModel`); the messages that follow (a StartTransaction,
a triggered StatusNotification, a reboot) are queued there and sent by the user's next step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from csms.protocol import v16
from csms.protocol.errors import NotImplementedCall, NotSupported, OcppError
from csms.protocol.frames import Call, encode_error, encode_result
from csms.protocol.schemas import validate_request

if TYPE_CHECKING:
    from loadtest.locust_charger import ChargerModel

Handler = Callable[["ChargerModel", dict[str, Any], float], dict[str, Any]]


def answer_call(charger: ChargerModel, call: Call, now: float) -> str:
    """The CALLRESULT or CALLERROR frame answering `call`."""
    version = charger.version
    try:
        handler = HANDLERS.get(call.action)
        if handler is None:
            if call.action in v16.CSMS_ACTIONS:
                raise NotSupported(f"{call.action} is not supported by this charger")
            raise NotImplementedCall(f"{call.action} is not an action this charger knows")
        validate_request(version, call.action, call.payload)
        return encode_result(call.message_id, handler(charger, call.payload, now))
    except OcppError as error:
        return encode_error(
            call.message_id, error.code_for(version), error.description, error.details
        )


def _status(status: str) -> dict[str, Any]:
    return {"status": status}


def reset(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    charger.request_reset(str(payload["type"]))
    return _status("Accepted")


def remote_start(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    if payload.get("connectorId", 1) != 1 or not charger.ready_for_session:
        return _status("Rejected")
    authorize = charger.config.get_bool("AuthorizeRemoteTxRequests")
    charger.begin_session(str(payload["idTag"]), now, authorize=authorize)
    return _status("Accepted")


def remote_stop(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    if charger.tx_id != payload["transactionId"] or not charger.end_session("Remote"):
        return _status("Rejected")
    return _status("Accepted")


def change_configuration(
    charger: ChargerModel, payload: dict[str, Any], now: float
) -> dict[str, Any]:
    key = str(payload["key"])
    status = charger.config.change(key, str(payload["value"]))
    if status in ("Accepted", "RebootRequired"):
        charger.configuration_changed(key, now)
    return _status(str(status))


def get_configuration(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    return charger.config.get_configuration(payload.get("key"))


def trigger_message(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    if payload.get("connectorId", 1) not in (0, 1):
        return _status("Rejected")
    accepted = charger.trigger(str(payload["requestedMessage"]))
    return _status("Accepted" if accepted else "NotImplemented")


def unlock_connector(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    if payload["connectorId"] != 1:
        return _status("NotSupported")
    charger.end_session("UnlockCommand")
    return _status("Unlocked")


def change_availability(
    charger: ChargerModel, payload: dict[str, Any], now: float
) -> dict[str, Any]:
    if payload["connectorId"] not in (0, 1):
        return _status("Rejected")
    return _status(charger.set_available(payload["type"] == "Operative", now))


def clear_cache(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    return _status("Accepted")


def data_transfer(charger: ChargerModel, payload: dict[str, Any], now: float) -> dict[str, Any]:
    return _status("UnknownVendorId")


HANDLERS: dict[str, Handler] = {
    "Reset": reset,
    "RemoteStartTransaction": remote_start,
    "RemoteStopTransaction": remote_stop,
    "ChangeConfiguration": change_configuration,
    "GetConfiguration": get_configuration,
    "TriggerMessage": trigger_message,
    "UnlockConnector": unlock_connector,
    "ChangeAvailability": change_availability,
    "ClearCache": clear_cache,
    "DataTransfer": data_transfer,
}
