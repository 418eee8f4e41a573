"""How a virtual 2.0.1 charger answers the CSMS: its calls translated onto the charger's own
command rules (`commands.CommandHandlers`), which 1.6 calls use too.

RequestStartTransaction and RequestStopTransaction start and stop sessions (the latter by
the charger's own transaction id); Reset, UnlockConnector, ChangeAvailability,
TriggerMessage and ClearCache do what their 1.6 counterparts do; GetVariables and
SetVariables read and change the configuration through the 2.0.1 names of its keys
(`SecurityCtrlr.BasicAuthPassword` is write-only: a valid new password is kept, as the 1.6
AuthorizationKey, and the charger reconnects with it after answering);
CostUpdated keeps the running cost the CSMS pushed; GetTransactionStatus says what is still
queued. Other calls are answered NotImplemented. It also takes the CSMS's answers to the
charger's TransactionEvents (a refused token stops the session, as with 1.6).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from csms.domain.credentials import BadPassword
from csms.domain.password_rotation import check_password
from simulator.commands import Answer, CommandHandlers, Dispatcher, status_answer
from simulator.config_store import ConfigurationStatus
from simulator.connectors import ChargeSession, ConnectorState

if TYPE_CHECKING:
    from simulator.chargepoint import VirtualChargePoint

#: (component, variable) of the 2.0.1 device model -> the charger's configuration key.
VARIABLES: dict[tuple[str, str], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "HeartbeatInterval",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "MeterValueSampleInterval",
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "MeterValuesSampledData",
    ("SampledDataCtrlr", "TxEndedMeasurands"): "StopTxnSampledData",
    ("AlignedDataCtrlr", "Interval"): "ClockAlignedDataInterval",
    ("AlignedDataCtrlr", "Measurands"): "MeterValuesAlignedData",
    ("AuthCacheCtrlr", "Enabled"): "AuthorizationCacheEnabled",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "AuthorizeRemoteTxRequests",
    ("AuthCtrlr", "LocalPreAuthorize"): "LocalPreAuthorize",
    ("LocalAuthListCtrlr", "Enabled"): "LocalAuthListEnabled",
    ("TxCtrlr", "StopTxOnInvalidId"): "StopTransactionOnInvalidId",
    ("TxCtrlr", "StopTxOnEVSideDisconnect"): "StopTransactionOnEVSideDisconnect",
    ("TxCtrlr", "EVConnectionTimeOut"): "ConnectionTimeOut",
}
#: Write-only: GetVariables is Rejected, SetVariables takes a new Basic-auth password.
PASSWORD_VARIABLE = ("SecurityCtrlr", "BasicAuthPassword")
_COMPONENTS = {component for component, _ in VARIABLES} | {PASSWORD_VARIABLE[0]}
_SET_STATUS = {
    ConfigurationStatus.ACCEPTED: "Accepted",
    ConfigurationStatus.REJECTED: "Rejected",
    ConfigurationStatus.REBOOT_REQUIRED: "RebootRequired",
    ConfigurationStatus.NOT_SUPPORTED: "UnknownVariable",
}
_TRIGGERS = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues"}


class V201Commands(Dispatcher):
    """The answers of a 2.0.1 charger; `commands` are the charger's own command rules."""

    __slots__ = ("commands", "cp", "running_costs")

    SPEAKER = "this 2.0.1 charger"
    HANDLERS: ClassVar[dict[str, str]] = {
        "RequestStartTransaction": "request_start",
        "RequestStopTransaction": "request_stop",
        "Reset": "reset",
        "UnlockConnector": "unlock_connector",
        "ChangeAvailability": "change_availability",
        "TriggerMessage": "trigger_message",
        "ClearCache": "clear_cache",
        "GetVariables": "get_variables",
        "SetVariables": "set_variables",
        "CostUpdated": "cost_updated",
        "GetTransactionStatus": "get_transaction_status",
        "DataTransfer": "data_transfer",
    }

    def __init__(self, commands: CommandHandlers) -> None:
        self.commands = commands
        self.cp: VirtualChargePoint = commands.cp
        #: The last running cost the CSMS pushed, by the charger's transaction id.
        self.running_costs: dict[str, float] = {}

    # -- transactions -----------------------------------------------------------------------

    def request_start(self, payload: dict[str, Any]) -> Answer:
        id_tag = payload["idToken"]["idToken"]
        request: dict[str, Any] = {"idTag": id_tag}
        if "evseId" in payload:
            request["connectorId"] = payload["evseId"]
        answer, follow_up = self.commands.remote_start(request)
        for connector in self.cp.connectors.values():
            remote = connector.remote_start
            if remote is not None and remote.id_tag == id_tag and remote.remote_start_id is None:
                remote.remote_start_id = payload["remoteStartId"]
        return answer, follow_up

    def _running(self, station_tx_id: str) -> ConnectorState | None:
        return next(
            (
                c
                for c in self.cp.connectors.values()
                if c.tx is not None and c.tx.station_tx_id == station_tx_id
            ),
            None,
        )

    def request_stop(self, payload: dict[str, Any]) -> Answer:
        connector = self._running(payload["transactionId"])
        if connector is None:
            return status_answer("Rejected")
        return {"status": "Accepted"}, partial(self._end, connector, "Remote")

    async def _end(self, connector: ConnectorState, reason: str) -> None:
        self.cp.end_transaction(connector, reason)

    def get_transaction_status(self, payload: dict[str, Any]) -> Answer:
        answer: dict[str, Any] = {
            "messagesInQueue": self.cp.link.queued_transaction_messages > 0,
        }
        if "transactionId" in payload:
            answer["ongoingIndicator"] = self._running(payload["transactionId"]) is not None
        return answer, None

    def cost_updated(self, payload: dict[str, Any]) -> Answer:
        self.running_costs[payload["transactionId"]] = float(payload["totalCost"])
        return {}, None

    def transaction_answered(
        self,
        action: str,
        payload: dict[str, Any],
        tx: ChargeSession | None,
        result: dict[str, Any],
    ) -> None:
        """The CSMS answered a TransactionEvent: remember the token's status; a start whose
        token is refused stops (StopTxOnInvalidId)."""
        cp = self.cp
        info = cp.dialect.id_tag_info(result)
        token = payload.get("idToken")
        if info is not None and token and cp.config.get_bool("AuthorizationCacheEnabled"):
            cp.local_auth.remember(token["idToken"], info)
        if tx is None or payload.get("eventType") != "Started":
            return
        self.commands.start_answered(tx, info)

    # -- reset, unlock, availability, trigger, cache --------------------------------------------

    def reset(self, payload: dict[str, Any]) -> Answer:
        if "evseId" in payload:
            return status_answer("Rejected")  # resets of one EVSE are not supported
        kind = "Hard" if payload["type"] == "Immediate" else "Soft"
        return self.commands.reset({"type": kind})

    def unlock_connector(self, payload: dict[str, Any]) -> Answer:
        answer, follow_up = self.commands.unlock_connector({"connectorId": payload["evseId"]})
        if answer["status"] == "NotSupported":
            return status_answer("UnknownConnector")
        return answer, follow_up

    def change_availability(self, payload: dict[str, Any]) -> Answer:
        evse = payload.get("evse") or {}
        operative = payload["operationalStatus"] == "Operative"
        return self.commands.change_availability(
            {"connectorId": evse.get("id", 0), "type": "Operative" if operative else "Inoperative"}
        )

    def trigger_message(self, payload: dict[str, Any]) -> Answer:
        requested = payload["requestedMessage"]
        if requested not in _TRIGGERS:
            return status_answer("NotImplemented")
        request: dict[str, Any] = {"requestedMessage": requested}
        evse = payload.get("evse")
        if evse is not None:
            request["connectorId"] = evse["id"]
        return self.commands.trigger_message(request)

    def clear_cache(self, payload: dict[str, Any]) -> Answer:
        return self.commands.clear_cache(payload)

    def data_transfer(self, payload: dict[str, Any]) -> Answer:
        return status_answer("UnknownVendorId")

    # -- variables ----------------------------------------------------------------------------

    def _key(self, item: dict[str, Any]) -> tuple[str | None, str | None]:
        """The configuration key of a variable, or the 2.0.1 status that says why none."""
        component, variable = item["component"]["name"], item["variable"]["name"]
        if item.get("attributeType", "Actual") != "Actual":
            return None, "NotSupportedAttributeType"
        if (component, variable) == PASSWORD_VARIABLE:
            return "AuthorizationKey", None
        key = VARIABLES.get((component, variable))
        if key is None:
            return None, "UnknownComponent" if component not in _COMPONENTS else "UnknownVariable"
        return key, None

    def get_variables(self, payload: dict[str, Any]) -> Answer:
        results = []
        for item in payload["getVariableData"]:
            key, refused = self._key(item)
            if key == "AuthorizationKey":
                key, refused = None, "Rejected"  # write-only
            result: dict[str, Any] = {
                "component": item["component"],
                "variable": item["variable"],
                "attributeStatus": refused or "Accepted",
            }
            if key is not None:
                result["attributeValue"] = self.cp.config.get(key)
            results.append(result)
        return {"getVariableResult": results}, None

    def set_variables(self, payload: dict[str, Any]) -> Answer:
        results = []
        password: str | None = None
        for item in payload["setVariableData"]:
            key, refused = self._key(item)
            if key == "AuthorizationKey":
                taken = self._password(item["attributeValue"])
                password = taken or password
                status = "Accepted" if taken is not None else "Rejected"
            else:
                changed = self.cp.config.change(key, item["attributeValue"]) if key else None
                status = refused or _SET_STATUS[changed or ConfigurationStatus.NOT_SUPPORTED]
            results.append(
                {
                    "component": item["component"],
                    "variable": item["variable"],
                    "attributeStatus": status,
                }
            )
        if password is not None:
            return {"setVariableResult": results}, partial(self.commands.take_password, password)
        return {"setVariableResult": results}, None

    def _password(self, value: str) -> str | None:
        """A valid new BasicAuthPassword, kept (as the AuthorizationKey); None if invalid."""
        try:
            password = check_password(self.cp.dialect.version, value)
        except BadPassword:
            return None
        self.cp.config.set("AuthorizationKey", password.encode().hex().upper())
        return password
