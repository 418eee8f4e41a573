"""Charging sessions at a virtual charger: the driver layer's API (plug in, unplug, stop)
and the rules that start and stop transactions.

A driver plugs in and presents an RFID card (Authorize, or the local list and cache when
offline, then StartTransaction), or plugs in and starts from the app (the CSMS's
RemoteStartTransaction). A transaction's messages go to the link's ordered queue; its record
(`SessionRecord`) is the simulator's ground truth for reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import trio

from csms.protocol.errors import OcppError
from simulator.connectors import ChargeSession, ConnectorState
from simulator.link import CallUnanswered
from simulator.physics import Vehicle
from simulator.records import Refusal, SessionRecord

if TYPE_CHECKING:
    from simulator.chargepoint import VirtualChargePoint


@dataclass(frozen=True, slots=True)
class PlugResult:
    """`outcome`: Started, Waiting (for a remote start from the app) or Refused; `status` is
    the authorization status, or why the charger refused."""

    outcome: str
    status: str
    session: SessionRecord | None = None


def _to_ms(moment: datetime) -> datetime:
    """OCPP timestamps carry milliseconds: the record keeps exactly what was reported."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class SessionFlows:
    __slots__ = ("cp",)

    def __init__(self, cp: VirtualChargePoint) -> None:
        self.cp = cp

    async def plug_in(
        self,
        connector_id: int,
        vehicle: Vehicle,
        id_tag: str | None = None,
        *,
        via_app: bool = False,
    ) -> PlugResult:
        """A driver plugs `vehicle` in and (unless `via_app`) presents the RFID `id_tag`.

        RFID: Authorize (or the local list when offline), then StartTransaction if accepted;
        a refusal puts the connector back to Available and is recorded in `refusals`. Via the
        app the charger waits in Preparing for the CSMS's RemoteStartTransaction (a remote
        start that came first starts the transaction now).
        """
        cp = self.cp
        await trio.lowlevel.checkpoint()
        connector = cp.connector(connector_id)
        tag = id_tag or ""
        if connector.vehicle is not None or connector.tx is not None:
            return self.refuse(connector, tag, "Occupied", via_app)
        if connector.faulted:
            return self.refuse(connector, tag, "Faulted", via_app)
        if not connector.operative:
            return self.refuse(connector, tag, "Unavailable", via_app)
        connector.vehicle = vehicle
        connector.finishing = False
        connector.last_advance = trio.current_time()
        remote = connector.remote_start
        if remote is not None and remote.ready:
            record = cp.commands.start_remote(connector, remote)
            return PlugResult("Started", "Accepted", record)
        cp.refresh_status(connector_id)
        if via_app or id_tag is None or remote is not None:
            return PlugResult("Waiting", "Preparing")
        reservation = connector.reservation
        if (
            reservation is not None
            and reservation.id_tag != id_tag
            and not reservation.parent_id_tag
        ):
            connector.vehicle = None
            return self.refuse(connector, id_tag, "Reserved", via_app)
        status, parent = await self.authorize(id_tag)
        if connector.vehicle is not vehicle or connector.tx is not None:
            return PlugResult("Refused", "Cancelled")
        reservation = connector.reservation
        if (
            status == "Accepted"
            and reservation is not None
            and reservation.id_tag != id_tag
            and (reservation.parent_id_tag is None or reservation.parent_id_tag != parent)
        ):
            status = "Reserved"
        if status != "Accepted":
            connector.vehicle = None
            return self.refuse(connector, id_tag, status, via_app)
        record = self.begin_transaction(connector, id_tag, via_app=False)
        return PlugResult("Started", status, record)

    async def unplug(
        self, connector_id: int, reason: str = "EVDisconnected"
    ) -> SessionRecord | None:
        """The driver unplugs: a running transaction stops with `reason` (if
        StopTransactionOnEVSideDisconnect); returns the session that ended, if any."""
        cp = self.cp
        await trio.lowlevel.checkpoint()
        connector = cp.connector(connector_id)
        if connector.vehicle is None:
            return None
        cp.advance(connector)
        record = None
        if connector.tx is not None and cp.config.get_bool("StopTransactionOnEVSideDisconnect"):
            record = connector.tx.record
            connector.vehicle = None
            self.end_transaction(connector, reason)
        connector.vehicle = None
        connector.finishing = False
        cp.refresh_status(connector_id)
        return record

    async def stop_charging(
        self, connector_id: int, id_tag: str | None = None, reason: str = "Local"
    ) -> SessionRecord | None:
        """The driver stops at the charger (card or button); the car stays plugged in."""
        cp = self.cp
        await trio.lowlevel.checkpoint()
        connector = cp.connector(connector_id)
        if connector.tx is None:
            return None
        record = connector.tx.record
        self.end_transaction(connector, reason, id_tag=id_tag)
        return record

    async def authorize(self, id_tag: str) -> tuple[str, str | None]:
        """(status, parentIdTag) for `id_tag`: locally when allowed, else from the CSMS,
        else (offline) from the local list and cache."""
        cp = self.cp
        use_list = cp.config.get_bool("LocalAuthListEnabled")
        use_cache = cp.config.get_bool("AuthorizationCacheEnabled")
        local = cp.local_auth.lookup(id_tag, cp.now(), use_list=use_list, use_cache=use_cache)
        known = cp.local_auth.entries.get(id_tag) or cp.local_auth.cache.get(id_tag) or {}
        parent = known.get("parentIdTag")
        if cp.link.online:
            if local == "Accepted" and cp.config.get_bool("LocalPreAuthorize"):
                return "Accepted", parent
            try:
                reply = await cp.link.call("Authorize", cp.dialect.authorize_payload(id_tag))
            except CallUnanswered:
                pass
            except OcppError:
                return "Invalid", None
            else:
                info = cp.dialect.id_tag_info(reply) or {"status": "Invalid"}
                if use_cache:
                    cp.local_auth.remember(id_tag, info)
                return info["status"], info.get("parentIdTag")
        if cp.config.get_bool("LocalAuthorizeOffline") and local is not None:
            return local, parent
        if local is None and cp.config.get_bool("AllowOfflineTxForUnknownId"):
            return "Accepted", None
        return "Offline", None

    def refuse(
        self, connector: ConnectorState, id_tag: str, status: str, via_app: bool
    ) -> PlugResult:
        cp = self.cp
        cp.refusals.append(
            Refusal(cp.station_id, connector.connector_id, id_tag, cp.now(), status, via_app)
        )
        cp.refresh_status(connector.connector_id)
        return PlugResult("Refused", status)

    def begin_transaction(
        self,
        connector: ConnectorState,
        id_tag: str,
        *,
        via_app: bool,
        profile: dict[str, Any] | None = None,
    ) -> SessionRecord:
        """Start a transaction on `connector` (authorized already) and queue its start."""
        cp = self.cp
        reservation, remote = connector.reservation, connector.remote_start
        connector.reservation = None
        cp.timers.cancel(("reservation", connector.connector_id))
        connector.remote_start = None
        cp.timers.cancel(("remote_start", connector.connector_id))
        now = _to_ms(cp.now())
        record = SessionRecord(
            cp.station_id,
            connector.connector_id,
            id_tag,
            started_at=now,
            meter_start_wh=connector.register.wh,
            via_app=via_app,
            reservation_id=reservation.reservation_id if reservation else None,
        )
        cp.sessions.append(record)
        tx = ChargeSession(record, now.timestamp(), connector.register.wh)
        tx.begin_values = connector.sampled_values(
            cp.config.get_list("StopTxnSampledData"), "Transaction.Begin", 0.0
        )
        connector.tx = tx
        connector.last_advance = trio.current_time()
        action, payload = cp.dialect.start(
            tx,
            reservation.reservation_id if reservation else None,
            remote.remote_start_id if remote is not None and via_app else None,
            offline=not cp.link.online,
        )
        cp.link.queue_transaction_message(action, payload, tx)
        if profile is not None:
            cp.commands.install_tx_profile(connector, profile)
        cp.schedule_sample(connector, restart=True)
        cp.timers.after(("physics", connector.connector_id), cp.timing.physics_step_s)
        cp.refresh_status(connector.connector_id)
        cp.notify_changed()
        return record

    def end_transaction(
        self, connector: ConnectorState, reason: str, *, id_tag: str | None = None
    ) -> None:
        """Stop the running transaction with `reason` and queue its StopTransaction."""
        cp = self.cp
        tx = connector.tx
        if tx is None:
            return
        cp.advance(connector)
        now = _to_ms(cp.now())
        record = tx.record
        meter_stop = connector.register.wh
        record.stopped_at = now
        record.meter_stop_wh = meter_stop
        record.energy_wh = tx.register_energy(meter_stop)
        record.stop_reason = reason
        end_values = connector.sampled_values(
            cp.config.get_list("StopTxnSampledData"), "Transaction.End", 0.0
        )
        action, payload = cp.dialect.stop(
            tx, reason, id_tag, tx.begin_values, end_values, offline=not cp.link.online
        )
        cp.link.queue_transaction_message(action, payload, tx)
        connector.tx = None
        connector.finishing = connector.vehicle is not None
        cp.smart.end_transaction(connector.connector_id)
        cp.timers.cancel(("sample", connector.connector_id))
        cp.timers.cancel(("physics", connector.connector_id))
        cp.commands.transaction_ended(connector)
        cp.refresh_status(connector.connector_id)
        cp.notify_changed()
