"""How a virtual charger answers every CSMS-initiated OCPP 1.6 call, the way a real one does.

Each handler takes the (schema-valid) request payload and returns the response payload and,
when the call sets work in motion, a follow-up that runs after the answer has been sent
(a remote start, a reset, a triggered message, a file transfer, a new password: the
charger reconnects with it once it has said Accepted). Handlers do not block:
the charger's reader answers calls in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from csms.protocol import v16
from csms.protocol.errors import NotImplementedCall
from simulator import maintenance
from simulator.config_store import ConfigurationStatus, password_of_key
from simulator.connectors import ChargeSession, ConnectorState, RemoteStart, Reservation
from simulator.records import SessionRecord
from simulator.smart_charging import TX_PROFILE, Electrical, parse_profile

if TYPE_CHECKING:
    from simulator.chargepoint import VirtualChargePoint

FollowUp = Callable[[], Awaitable[None]]
Answer = tuple[dict[str, Any], FollowUp | None]
_RATE_UNITS = {"A": "Current", "W": "Power"}


def status_answer(status: str) -> Answer:
    """The answer that is only a status, with nothing to follow."""
    return {"status": status}, None


class Dispatcher:
    """Answers a call by the method `HANDLERS` names for its action."""

    __slots__ = ()

    #: Action -> the method answering it (by name: a per-charger dict of bound methods would
    #: cost every charger its own copy).
    HANDLERS: ClassVar[dict[str, str]]
    #: Who says a call is not implemented.
    SPEAKER: ClassVar[str]

    def handle(self, action: str, payload: dict[str, Any]) -> Answer:
        name = self.HANDLERS.get(action)
        if name is None:
            raise NotImplementedCall(f"{action} is not implemented by {self.SPEAKER}")
        handler: Callable[[dict[str, Any]], Answer] = getattr(self, name)
        return handler(payload)


class CommandHandlers(Dispatcher):
    __slots__ = (
        "cp",
        "firmware_pending",
    )

    SPEAKER = "this charger"
    HANDLERS: ClassVar[dict[str, str]] = {
        "RemoteStartTransaction": "remote_start",
        "RemoteStopTransaction": "remote_stop",
        "Reset": "reset",
        "UnlockConnector": "unlock_connector",
        "ChangeAvailability": "change_availability",
        "TriggerMessage": "trigger_message",
        "ChangeConfiguration": "change_configuration",
        "GetConfiguration": "get_configuration",
        "ClearCache": "clear_cache",
        "SendLocalList": "send_local_list",
        "GetLocalListVersion": "get_local_list_version",
        "ReserveNow": "reserve_now",
        "CancelReservation": "cancel_reservation",
        "SetChargingProfile": "set_charging_profile",
        "ClearChargingProfile": "clear_charging_profile",
        "GetCompositeSchedule": "get_composite_schedule",
        "GetDiagnostics": "get_diagnostics",
        "UpdateFirmware": "update_firmware",
        "DataTransfer": "data_transfer",
    }

    def __init__(self, cp: VirtualChargePoint) -> None:
        self.cp = cp
        self.firmware_pending: str | None = None

    def data_transfer(self, payload: dict[str, Any]) -> Answer:
        return status_answer("UnknownVendorId")

    def _connector(self, connector_id: int | None) -> ConnectorState | None:
        return self.cp.connectors.get(connector_id) if connector_id is not None else None

    # -- transactions -----------------------------------------------------------------------

    def _can_start(self, connector: ConnectorState, id_tag: str) -> bool:
        reservation = connector.reservation
        return (
            connector.operative
            and not connector.faulted
            and connector.tx is None
            and connector.remote_start is None
            and (reservation is None or reservation.id_tag == id_tag)
        )

    def remote_start(self, payload: dict[str, Any]) -> Answer:
        id_tag = payload["idTag"]
        profile = payload.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != TX_PROFILE:
            return status_answer("Rejected")
        requested = payload.get("connectorId")
        candidates = (
            [c for c in [self._connector(requested)] if c is not None]
            if requested is not None
            else sorted(self.cp.connectors.values(), key=lambda c: c.vehicle is None)
        )
        connector = next((c for c in candidates if self._can_start(c, id_tag)), None)
        if connector is None:
            return status_answer("Rejected")
        remote = RemoteStart(id_tag, profile)
        connector.remote_start = remote
        return {"status": "Accepted"}, partial(self._remote_start_flow, connector, remote)

    async def _remote_start_flow(self, connector: ConnectorState, remote: RemoteStart) -> None:
        cp = self.cp
        if cp.config.get_bool("AuthorizeRemoteTxRequests"):
            status, _ = await cp.authorize(remote.id_tag)
            if connector.remote_start is not remote:
                return
            if status != "Accepted":
                connector.remote_start = None
                cp.refuse(connector, remote.id_tag, status, True)
                return
        if connector.remote_start is not remote:
            return
        remote.ready = True
        if connector.vehicle is not None and connector.tx is None:
            self.start_remote(connector, remote)
            return
        cp.refresh_status(connector.connector_id)
        cp.timers.after(
            ("remote_start", connector.connector_id), cp.config.get_int("ConnectionTimeOut")
        )

    def start_remote(self, connector: ConnectorState, remote: RemoteStart) -> SessionRecord:
        return self.cp.begin_transaction(
            connector, remote.id_tag, via_app=True, profile=remote.profile
        )

    def remote_stop(self, payload: dict[str, Any]) -> Answer:
        wanted = payload["transactionId"]
        for connector in self.cp.connectors.values():
            if connector.tx is not None and connector.tx.transaction_id == wanted:
                return {"status": "Accepted"}, partial(self._end, connector, "Remote")
        return status_answer("Rejected")

    async def _end(self, connector: ConnectorState, reason: str) -> None:
        self.cp.end_transaction(connector, reason)

    def transaction_answered(
        self,
        action: str,
        payload: dict[str, Any],
        tx: ChargeSession | None,
        result: dict[str, Any],
    ) -> None:
        """The CSMS answered a queued transaction message."""
        cp = self.cp
        info = result.get("idTagInfo")
        if info is not None and cp.config.get_bool("AuthorizationCacheEnabled"):
            cp.local_auth.remember(payload.get("idTag", tx.record.id_tag if tx else ""), info)
        if action != "StartTransaction" or tx is None:
            return
        tx.record.transaction_id = int(result["transactionId"])
        self.start_answered(tx, info)

    def start_answered(self, tx: ChargeSession, info: dict[str, Any] | None) -> None:
        """The CSMS answered a transaction's start with the token's `info` (1.6 shape): a
        refused token stops the session (StopTransactionOnInvalidId)."""
        cp = self.cp
        tx.record.start_status = info["status"] if info else None
        connector = cp.connectors[tx.record.connector_id]
        if (
            info is not None
            and info["status"] != "Accepted"
            and connector.tx is tx
            and cp.config.get_bool("StopTransactionOnInvalidId")
        ):
            cp.end_transaction(connector, "DeAuthorized")
        cp.notify_changed()

    def transaction_ended(self, connector: ConnectorState) -> None:
        """A ChangeAvailability that was Scheduled applies once the transaction is over."""
        if connector.scheduled_operative is not None:
            connector.operative = connector.scheduled_operative
            connector.scheduled_operative = None

    def timer_fired(self, kind: str, connector_id: int) -> None:
        connector = self.cp.connectors.get(connector_id)
        if connector is None:
            return
        if kind == "reservation":
            connector.reservation = None
            self.cp.refresh_status(connector_id)
        elif kind == "remote_start" and connector.remote_start is not None:
            remote, connector.remote_start = connector.remote_start, None
            self.cp.refuse(connector, remote.id_tag, "ConnectionTimeOut", True)

    # -- reset, unlock, availability --------------------------------------------------------

    def reset(self, payload: dict[str, Any]) -> Answer:
        kind = payload["type"]
        reason = "HardReset" if kind == "Hard" else "SoftReset"
        return {"status": "Accepted"}, partial(self.cp.restart_after, reason, flush=kind != "Hard")

    def on_reboot(self) -> None:
        if self.firmware_pending is not None:
            self.cp.firmware_version, self.firmware_pending = self.firmware_pending, None

    def unlock_connector(self, payload: dict[str, Any]) -> Answer:
        connector = self._connector(payload["connectorId"])
        if connector is None:
            return status_answer("NotSupported")
        if connector.tx is not None:
            return {"status": "Unlocked"}, partial(self._end, connector, "UnlockCommand")
        return status_answer("Unlocked")

    def change_availability(self, payload: dict[str, Any]) -> Answer:
        cp = self.cp
        connector_id, operative = payload["connectorId"], payload["type"] == "Operative"
        if connector_id == 0:
            targets = list(cp.connectors.values())
            cp.station_operative = operative
            cp.refresh_status(0)
        else:
            one = self._connector(connector_id)
            if one is None:
                return status_answer("Rejected")
            targets = [one]
        scheduled = False
        for connector in targets:
            if connector.tx is not None and not operative:
                connector.scheduled_operative = False
                scheduled = True
            else:
                connector.operative = operative
                connector.scheduled_operative = None
                cp.refresh_status(connector.connector_id)
        return status_answer("Scheduled" if scheduled else "Accepted")

    # -- trigger ----------------------------------------------------------------------------

    def trigger_message(self, payload: dict[str, Any]) -> Answer:
        cp = self.cp
        requested = payload["requestedMessage"]
        connector_id = payload.get("connectorId")
        if connector_id is not None and connector_id != 0 and connector_id not in cp.connectors:
            return status_answer("Rejected")
        senders: dict[str, FollowUp] = {
            "BootNotification": self._trigger_boot,
            "Heartbeat": partial(self._send, "Heartbeat", {}),
            "StatusNotification": partial(self._trigger_status, connector_id),
            "MeterValues": partial(self._trigger_meter_values, connector_id),
            "DiagnosticsStatusNotification": partial(
                self._send, "DiagnosticsStatusNotification", {"status": cp.diagnostics_status}
            ),
            "FirmwareStatusNotification": partial(
                self._send, "FirmwareStatusNotification", {"status": cp.firmware_status}
            ),
        }
        sender = senders.get(requested)
        if sender is None:
            return status_answer("NotImplemented")
        return {"status": "Accepted"}, sender

    async def _send(self, action: str, payload: dict[str, Any]) -> None:
        self.cp.link.send_nowait(action, payload)
        await trio.lowlevel.checkpoint()

    async def _trigger_boot(self) -> None:
        try:
            reply = await self.cp.call("BootNotification", self.cp.boot_payload())
        except Exception:  # offline (CallUnanswered) or a CALLERROR: nothing to apply
            return
        self.cp.apply_boot(reply)

    async def _trigger_status(self, connector_id: int | None) -> None:
        ids = [connector_id] if connector_id is not None else [0, *self.cp.connectors]
        for one in ids:
            self.cp.refresh_status(one, force=True)
        await trio.lowlevel.checkpoint()

    async def _trigger_meter_values(self, connector_id: int | None) -> None:
        cp = self.cp
        ids = [connector_id] if connector_id else list(cp.connectors)
        measurands = cp.config.get_list("MeterValuesSampledData")
        for one in ids:
            connector = cp.connectors[one]
            cp.advance(connector)
            cp.send_meter_values(connector, measurands, "Trigger", cp.timestamp())
        await trio.lowlevel.checkpoint()

    # -- configuration and local authorization ----------------------------------------------

    def change_configuration(self, payload: dict[str, Any]) -> Answer:
        key, value = payload["key"], payload["value"]
        status: ConfigurationStatus = self.cp.config.change(key, value)
        password = password_of_key(value) if key.lower() == "authorizationkey" else None
        if status is ConfigurationStatus.ACCEPTED and password is not None:
            return status_answer(status)[0], partial(self.take_password, password)
        return status_answer(status)

    async def take_password(self, password: str) -> None:
        """After answering: log in with the new password (see `take_password`)."""
        self.cp.take_password(password)
        await trio.lowlevel.checkpoint()

    def get_configuration(self, payload: dict[str, Any]) -> Answer:
        return self.cp.config.get_configuration(payload.get("key")), None

    def clear_cache(self, payload: dict[str, Any]) -> Answer:
        self.cp.local_auth.clear_cache()
        return status_answer("Accepted")

    def send_local_list(self, payload: dict[str, Any]) -> Answer:
        if not self.cp.config.get_bool("LocalAuthListEnabled"):
            return status_answer("NotSupported")
        status = self.cp.local_auth.update(
            payload["listVersion"], payload["updateType"], payload.get("localAuthorizationList")
        )
        return status_answer(status)

    def get_local_list_version(self, payload: dict[str, Any]) -> Answer:
        enabled = self.cp.config.get_bool("LocalAuthListEnabled")
        return {"listVersion": self.cp.local_auth.version if enabled else -1}, None

    # -- reservations -----------------------------------------------------------------------

    def reserve_now(self, payload: dict[str, Any]) -> Answer:
        cp = self.cp
        connector_id, reservation_id = payload["connectorId"], payload["reservationId"]
        connector = self._connector(connector_id)
        if connector is None:  # connector 0 too: ReserveConnectorZeroSupported is false
            return status_answer("Rejected")
        expiry = v16.parse_time(payload["expiryDate"]).timestamp()
        now = cp.epoch()
        if expiry <= now:
            return status_answer("Rejected")
        if connector.faulted:
            return status_answer("Faulted")
        if not connector.operative:
            return status_answer("Unavailable")
        held = connector.reservation
        if not connector.free or (held is not None and held.reservation_id != reservation_id):
            return status_answer("Occupied")
        for other in cp.connectors.values():  # a reservation id moves, it is not duplicated
            if other.reservation is not None and other.reservation.reservation_id == reservation_id:
                other.reservation = None
                cp.timers.cancel(("reservation", other.connector_id))
                cp.refresh_status(other.connector_id)
        connector.reservation = Reservation(
            reservation_id, payload["idTag"], payload.get("parentIdTag"), expiry
        )
        cp.timers.after(("reservation", connector.connector_id), expiry - now)
        cp.refresh_status(connector.connector_id)
        return status_answer("Accepted")

    def cancel_reservation(self, payload: dict[str, Any]) -> Answer:
        cp = self.cp
        for connector in cp.connectors.values():
            held = connector.reservation
            if held is not None and held.reservation_id == payload["reservationId"]:
                connector.reservation = None
                cp.timers.cancel(("reservation", connector.connector_id))
                cp.refresh_status(connector.connector_id)
                return status_answer("Accepted")
        return status_answer("Rejected")

    # -- smart charging ---------------------------------------------------------------------

    def _install(self, connector_id: int, payload: dict[str, Any]) -> bool:
        cp = self.cp
        unit = payload["chargingSchedule"]["chargingRateUnit"]
        if _RATE_UNITS[unit] not in cp.config.get_list("ChargingScheduleAllowedChargingRateUnit"):
            return False
        profile = parse_profile(connector_id, payload)
        connector = cp.connectors.get(connector_id)
        tx = connector.tx if connector is not None else None
        cp.advance_all()  # the energy so far was drawn under the old limits
        accepted = cp.smart.install(
            profile,
            connectors=len(cp.connectors),
            in_tx=tx is not None,
            tx_id=tx.transaction_id if tx else None,
        )
        if accepted:
            for one in cp.connectors:
                cp.refresh_status(one)
        return accepted

    def install_tx_profile(self, connector: ConnectorState, payload: dict[str, Any]) -> None:
        """The TxProfile that came with a RemoteStartTransaction."""
        self._install(connector.connector_id, payload)

    def set_charging_profile(self, payload: dict[str, Any]) -> Answer:
        accepted = self._install(payload["connectorId"], payload["csChargingProfiles"])
        return status_answer("Accepted" if accepted else "Rejected")

    def clear_charging_profile(self, payload: dict[str, Any]) -> Answer:
        cp = self.cp
        cp.advance_all()
        cleared = cp.smart.clear(
            payload.get("id"),
            payload.get("connectorId"),
            payload.get("chargingProfilePurpose"),
            payload.get("stackLevel"),
        )
        for one in cp.connectors:
            cp.refresh_status(one)
        return status_answer("Accepted" if cleared else "Unknown")

    def get_composite_schedule(self, payload: dict[str, Any]) -> Answer:
        cp = self.cp
        connector_id = payload["connectorId"]
        if connector_id != 0 and connector_id not in cp.connectors:
            return status_answer("Rejected")
        unit = payload.get("chargingRateUnit", "W")
        if connector_id == 0:
            first = cp.connectors[1].spec
            total = sum(c.spec.max_power_w for c in cp.connectors.values())
            supply = Electrical(first.voltage, first.phases, total)
            tx = None
        else:
            connector = cp.connectors[connector_id]
            supply, tx = connector.spec.electrical, connector.tx
        now = cp.now()
        periods = cp.smart.composite(
            connector_id,
            now.timestamp(),
            payload["duration"],
            unit,
            supply,
            in_tx=tx is not None,
            # A Relative profile without a transaction would start now.
            tx_start=tx.start_epoch if tx else now.timestamp(),
        )
        schedule = {
            "duration": payload["duration"],
            "startSchedule": v16.iso(now),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        }
        return {
            "status": "Accepted",
            "connectorId": connector_id,
            "scheduleStart": v16.iso(now),
            "chargingSchedule": schedule,
        }, None

    # -- file transfers ---------------------------------------------------------------------

    def get_diagnostics(self, payload: dict[str, Any]) -> Answer:
        cp = self.cp
        file_name = f"{cp.station_id}-{cp.now():%Y%m%dT%H%M%S}.log"
        return {"fileName": file_name}, partial(
            maintenance.upload_diagnostics, cp, payload, file_name
        )

    def update_firmware(self, payload: dict[str, Any]) -> Answer:
        return {}, partial(maintenance.update_firmware, self.cp, payload, self)
