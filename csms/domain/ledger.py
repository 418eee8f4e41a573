"""The ledger's rules: how each domain event changes the records and what is answered.

`LedgerRules.apply` runs inside one storage transaction (`LedgerTx`). It is idempotent:
a retried StartTransaction gets the same id, a retried StopTransaction or MeterValues
changes nothing. Data for unknown transactions is kept and flagged for reconciliation;
meter anomalies are flagged, never rejected. Transactions that 2.x stations number
themselves are mapped onto the same records by `station_transactions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from csms.domain import station_transactions
from csms.domain.authorization import authorize
from csms.domain.billing import BillingRules
from csms.domain.events import (
    AuthorizeRequested,
    BootReported,
    ConnectionChanged,
    DataTransferReceived,
    DeviceModelReported,
    DiagnosticsStatusReported,
    DomainEvent,
    FirmwareStatusReported,
    HeartbeatReceived,
    MeterSample,
    MeterValuesReported,
    NotificationReported,
    PasswordRotation,
    StatusReported,
    TransactionEventReported,
    TransactionStarted,
    TransactionStopped,
)
from csms.domain.metering import is_register, register_anomaly
from csms.domain.ports import LedgerStore
from csms.domain.records import RegisterReading, TransactionStatus
from csms.domain.replies import (
    Ack,
    AuthorizationStatus,
    AuthorizeDecision,
    BootDecision,
    ConnectionAck,
    DataTransferDecision,
    HeartbeatAck,
    IdTagInfo,
    NotificationAck,
    RegistrationStatus,
    Reply,
    RotationApplied,
    StartDecision,
    StopDecision,
)

#: The status a notification's response carries, for those whose response has one. This
#: CSMS computes no charging schedules: an EV's charging needs are answered Rejected ("service
#: not available"), so that the station does not wait for a schedule; the schedule an EV
#: negotiated with the station is taken note of (Accepted).
_NOTIFICATION_ANSWERS = {"ev_charging_needs": "Rejected", "ev_charging_schedule": "Accepted"}


class UnknownStationPolicy(StrEnum):
    REJECT = "reject"
    PENDING = "pending"
    ACCEPT = "accept"


@dataclass(frozen=True)
class LedgerRules:
    unknown_stations: UnknownStationPolicy = UnknownStationPolicy.REJECT
    heartbeat_interval: int = 300
    #: How long a Pending or Rejected station waits before it boots again.
    retry_interval: int = 60
    #: Pricing and payment of sessions; None runs the ledger without billing.
    billing: BillingRules | None = field(default_factory=BillingRules)
    #: How often (seconds of arrival time) a 2.x station is told its session's running cost.
    cost_update_interval_s: float = 300.0

    def apply(self, tx: LedgerStore, event: DomainEvent) -> Reply:
        handler: Callable[[LedgerRules, LedgerStore, Any], Reply] = _HANDLERS[type(event)]
        return handler(self, tx, event)

    # -- stations ----------------------------------------------------------------------

    def boot(self, tx: LedgerStore, event: BootReported) -> Reply:
        station = tx.get_station(event.station_id)
        if (
            station is not None and station.registered
        ) or self.unknown_stations is UnknownStationPolicy.ACCEPT:
            status, register = RegistrationStatus.ACCEPTED, True
        elif self.unknown_stations is UnknownStationPolicy.PENDING:
            status, register = RegistrationStatus.PENDING, False
        else:
            status, register = RegistrationStatus.REJECTED, False
        tx.save_boot(event, status.value, register)
        logged = {"status": status.value}
        if event.reason is not None:
            logged["reason"] = event.reason
        tx.log_event(event.station_id, "boot", event.received_at, logged)
        interval = (
            self.heartbeat_interval
            if status is RegistrationStatus.ACCEPTED
            else self.retry_interval
        )
        return BootDecision(status, interval, event.received_at)

    def heartbeat(self, tx: LedgerStore, event: HeartbeatReceived) -> Reply:
        tx.touch_station(event.station_id, event.received_at, heartbeat=True)
        return HeartbeatAck(event.received_at)

    def status(self, tx: LedgerStore, event: StatusReported) -> Reply:
        tx.record_status(event)
        if event.error_code != "NoError" or event.status == "Faulted":
            tx.log_event(
                event.station_id,
                "fault",
                event.received_at,
                {
                    "connector_id": event.connector_id,
                    "status": event.status,
                    "error_code": event.error_code,
                    "info": event.info,
                    "vendor_error_code": event.vendor_error_code,
                },
            )
        return Ack()

    def connection(self, tx: LedgerStore, event: ConnectionChanged) -> Reply:
        if event.state != "replaced":
            tx.set_connection_state(event.station_id, event.state == "connected", event.received_at)
        tx.log_event(event.station_id, event.state, event.received_at, event.detail)
        station = tx.get_station(event.station_id)
        return ConnectionAck(station is not None and station.registered)

    def firmware_status(self, tx: LedgerStore, event: FirmwareStatusReported) -> Reply:
        tx.set_station_field(event.station_id, "firmware_status", event.status)
        tx.log_event(
            event.station_id, "firmware_status", event.received_at, {"status": event.status}
        )
        return Ack()

    def diagnostics_status(self, tx: LedgerStore, event: DiagnosticsStatusReported) -> Reply:
        tx.set_station_field(event.station_id, "diagnostics_status", event.status)
        tx.log_event(
            event.station_id, "diagnostics_status", event.received_at, {"status": event.status}
        )
        return Ack()

    def device_model(self, tx: LedgerStore, event: DeviceModelReported) -> Reply:
        tx.save_device_variables(
            event.station_id, event.request_id, event.variables, event.received_at
        )
        tx.log_event(
            event.station_id,
            "device_model_report",
            event.received_at,
            {
                "request_id": event.request_id,
                "seq_no": event.seq_no,
                "more_to_come": event.more_to_come,
                "generated_at": event.generated_at,
                "variables": len(event.variables),
            },
        )
        return Ack()

    def notification(self, tx: LedgerStore, event: NotificationReported) -> Reply:
        tx.log_event(event.station_id, event.kind, event.received_at, event.data)
        return NotificationAck(_NOTIFICATION_ANSWERS.get(event.kind))

    def password_rotation(self, tx: LedgerStore, event: PasswordRotation) -> Reply:
        applied = tx.rotate_password(event.station_id, event.stage, event.password_hash)
        # The audit trail names the step, never the password or its hash.
        tx.log_event(
            event.station_id,
            "password_rotation",
            event.received_at,
            {"stage": event.stage.value, "applied": applied},
        )
        return RotationApplied(applied)

    def transaction_event(self, tx: LedgerStore, event: TransactionEventReported) -> Reply:
        return station_transactions.apply(self, tx, event)

    def data_transfer(self, tx: LedgerStore, event: DataTransferReceived) -> Reply:
        tx.log_event(
            event.station_id,
            "data_transfer",
            event.received_at,
            {"vendor_id": event.vendor_id, "message_id": event.message_id, "data": event.data},
        )
        # No vendor extensions are implemented; the spec's answer for that is UnknownVendorId.
        return DataTransferDecision("UnknownVendorId")

    # -- authorization and transactions -------------------------------------------------

    def token_info(
        self, tx: LedgerStore, id_tag: str, event_time: Any, *, already_counted: int = 0
    ) -> IdTagInfo:
        """The token's status now, billing's refusals included (the 2.x bookkeeping asks too).

        `already_counted`: active transactions of this tag that are the one being decided."""
        token = tx.get_token(id_tag)
        parent = tx.get_token(token.parent_id_tag) if token and token.parent_id_tag else None
        active = tx.count_active_transactions(id_tag) - already_counted if token else 0
        info = authorize(token, parent, event_time, active)
        if info.status is AuthorizationStatus.ACCEPTED and self.billing is not None:
            refused = self.billing.authorization(tx, id_tag)
            if refused is not None:
                return IdTagInfo(refused, info.expiry, info.parent_id_tag)
        return info

    def authorize(self, tx: LedgerStore, event: AuthorizeRequested) -> Reply:
        if event.token_type == station_transactions.NO_AUTHORIZATION:
            # The station charges without authorization: there is nothing to look up.
            return AuthorizeDecision(IdTagInfo(AuthorizationStatus.ACCEPTED))
        info = self.token_info(tx, event.id_tag, event.received_at)
        if info.status is not AuthorizationStatus.ACCEPTED:
            # Refusals are what an operator looks for; accepted ones are the norm.
            tx.log_event(
                event.station_id,
                "authorization_refused",
                event.received_at,
                {"id_tag": event.id_tag, "status": info.status.value},
            )
        return AuthorizeDecision(info)

    def start_transaction(self, tx: LedgerStore, event: TransactionStarted) -> Reply:
        existing = tx.find_started_transaction(
            event.station_id, event.connector_id, event.id_tag, event.timestamp
        )
        if existing is not None:
            # A retry: the transaction it started must not count against its own token's limit.
            counted = 1 if existing.status is TransactionStatus.ACTIVE else 0
            info = self.token_info(tx, event.id_tag, event.received_at, already_counted=counted)
            return StartDecision(existing.id, info)
        info = self.token_info(tx, event.id_tag, event.received_at)
        transaction_id = self.open_transaction(
            tx,
            {
                "station_id": event.station_id,
                "connector_id": event.connector_id,
                "id_tag": event.id_tag,
                "auth_status": info.status.value,
                "meter_start_wh": event.meter_start_wh,
                "started_at": event.timestamp,
                "start_received_at": event.received_at,
                "reservation_id": event.reservation_id,
                "status": TransactionStatus.ACTIVE.value,
                "last_meter_wh": event.meter_start_wh,
                "last_meter_at": event.timestamp,
            },
            event.received_at,
        )
        if self.billing is not None and info.status is AuthorizationStatus.ACCEPTED:
            self.billing.on_start(tx, transaction_id, event.id_tag, event.received_at)
        return StartDecision(transaction_id, info)

    def open_transaction(self, tx: LedgerStore, values: dict[str, Any], received_at: Any) -> int:
        """Insert a started transaction; an older one still active on its connector is
        marked Interrupted (its stop never came before the next start)."""
        station_id, connector_id = values["station_id"], values["connector_id"]
        previous = tx.active_transaction_on_connector(station_id, connector_id)
        if previous is not None:
            tx.update_transaction(
                previous.id,
                {"status": TransactionStatus.INTERRUPTED.value, "needs_reconciliation": 1},
            )
            tx.log_event(
                station_id,
                "transaction_interrupted",
                received_at,
                {"transaction_id": previous.id, "connector_id": connector_id},
            )
        return tx.insert_transaction(values)

    def meter_values(self, tx: LedgerStore, event: MeterValuesReported) -> Reply:
        record = None
        reported = event.transaction_id
        if reported is not None:
            record = tx.get_transaction(reported)
            if record is None or record.station_id != event.station_id:
                record = None
            else:
                reported = None
        self._store_samples(
            tx,
            event.station_id,
            event.connector_id,
            record.id if record else None,
            record.last_register if record else None,
            reported,
            event.samples,
            event.received_at,
            record.anomalies if record else (),
            record.register_offset_wh if record else 0.0,
        )
        return Ack()

    def stop_transaction(self, tx: LedgerStore, event: TransactionStopped) -> Reply:
        info = self.token_info(tx, event.id_tag, event.received_at) if event.id_tag else None
        record = tx.get_transaction(event.transaction_id)
        if record is None or record.station_id != event.station_id:
            return self._stop_unmatched(tx, event, info)
        if record.status is not TransactionStatus.ACTIVE and record.ended_at is not None:
            if record.ended_at != event.timestamp or record.meter_stop_wh != event.meter_stop_wh:
                tx.log_event(
                    event.station_id,
                    "conflicting_stop",
                    event.received_at,
                    {"transaction_id": record.id, "meter_stop_wh": event.meter_stop_wh},
                )
            return StopDecision(info)
        start = record.meter_start_wh or 0
        stored = self._store_samples(
            tx,
            event.station_id,
            record.connector_id,
            record.id,
            record.last_register,
            None,
            event.samples,
            event.received_at,
            record.anomalies,
            record.register_offset_wh,
        )
        offset = stored.offset_wh
        flags: list[str] = []
        stop_reading = RegisterReading(float(event.meter_stop_wh), event.timestamp)
        trusted = "implausible_jump" not in {*record.anomalies, *stored.anomalies}
        if (
            trusted
            and stored.last is not None
            and register_anomaly(stored.last, stop_reading) == "register_reset"
        ):
            # The meter was reset after its last sample: it counts from zero again. (After
            # an implausible jump the last reading is not trusted, and nothing is guessed.)
            offset += stored.last.wh
            flags.append("register_reset")
        energy = event.meter_stop_wh - start + offset
        if energy < 0:
            flags.append("stop_below_start")
        if flags:
            flags = sorted({*record.anomalies, *stored.anomalies, *flags})
        tx.update_transaction(
            record.id,
            {
                "status": (
                    TransactionStatus.COMPLETED.value
                    if record.status is TransactionStatus.ACTIVE
                    else record.status.value
                ),
                "meter_stop_wh": event.meter_stop_wh,
                "energy_wh": max(0, round(energy)),
                "register_offset_wh": offset,
                "ended_at": event.timestamp,
                "stop_received_at": event.received_at,
                "stop_reason": event.reason,
                "stop_id_tag": event.id_tag,
                "last_meter_wh": event.meter_stop_wh,
                "last_meter_at": event.timestamp,
                **({"anomalies": ",".join(flags), "needs_reconciliation": 1} if flags else {}),
            },
        )
        total_cost = None
        if self.billing is not None:
            ended = tx.get_transaction(record.id)
            assert ended is not None
            cdr = self.billing.on_stop(tx, ended, event.timestamp)
            if cdr is not None:
                incl = cdr.total_cost.incl_vat
                total_cost = incl if incl is not None else cdr.total_cost.excl_vat
        return StopDecision(info, total_cost)

    def _stop_unmatched(
        self, tx: LedgerStore, event: TransactionStopped, info: IdTagInfo | None
    ) -> Reply:
        if tx.find_unmatched_stop(event.station_id, event.transaction_id, event.timestamp):
            return StopDecision(info)
        connector_id = 0  # a 1.6 StopTransaction does not name its connector
        transaction_id = tx.insert_transaction(
            {
                "station_id": event.station_id,
                "connector_id": connector_id,
                "id_tag": event.id_tag,
                "meter_stop_wh": event.meter_stop_wh,
                "ended_at": event.timestamp,
                "stop_received_at": event.received_at,
                "stop_reason": event.reason,
                "stop_id_tag": event.id_tag,
                "status": TransactionStatus.UNMATCHED.value,
                "reported_transaction_id": event.transaction_id,
                "needs_reconciliation": 1,
            }
        )
        self._store_samples(
            tx,
            event.station_id,
            connector_id,
            transaction_id,
            None,
            event.transaction_id,
            event.samples,
            event.received_at,
        )
        tx.log_event(
            event.station_id,
            "unmatched_stop",
            event.received_at,
            {"reported_transaction_id": event.transaction_id, "ledger_id": transaction_id},
        )
        return StopDecision(info)

    def _store_samples(
        self,
        tx: LedgerStore,
        station_id: str,
        connector_id: int,
        transaction_id: int | None,
        previous: RegisterReading | None,
        reported_transaction_id: int | None,
        samples: tuple[MeterSample, ...],
        received_at: Any,
        known_anomalies: tuple[str, ...] = (),
        known_offset_wh: float = 0.0,
    ) -> _Stored:
        """Store samples, flagging register anomalies.

        `known_anomalies` are the transaction's earlier ones, kept beside the new ones. A
        reset (the register falls to about zero) adds the reading before it to the
        transaction's register offset, so its energy stays right.
        """
        if not samples:
            return _Stored([], previous, known_offset_wh)
        offset = known_offset_wh
        flagged: list[tuple[MeterSample, str | None]] = []
        anomalies: list[str] = []
        for sample in sorted(samples, key=lambda s: s.timestamp):
            anomaly = None
            # A reading older than the latest one (a StopTransaction's Transaction.Begin or
            # StopTxnSampledData values) was superseded: not judged against a later reading.
            if is_register(sample) and (previous is None or sample.timestamp >= previous.timestamp):
                anomaly = register_anomaly(previous, sample)
                if anomaly == "register_reset" and previous is not None:
                    offset += previous.wh
                if sample.wh is not None:
                    previous = RegisterReading(sample.wh, sample.timestamp)
                if anomaly:
                    anomalies.append(anomaly)
            flagged.append((sample, anomaly))
        inserted = tx.insert_samples(
            station_id, connector_id, transaction_id, reported_transaction_id, flagged, received_at
        )
        if reported_transaction_id is not None and inserted:
            tx.log_event(
                station_id,
                "unmatched_meter_values",
                received_at,
                {"reported_transaction_id": reported_transaction_id, "samples": inserted},
            )
        if transaction_id is not None and inserted:
            values: dict[str, Any] = {}
            if previous is not None:
                values = {"last_meter_wh": previous.wh, "last_meter_at": previous.timestamp}
            if anomalies:
                values["anomalies"] = ",".join(sorted({*known_anomalies, *anomalies}))
                values["needs_reconciliation"] = 1
            if offset != known_offset_wh:
                values["register_offset_wh"] = offset
            if values:
                tx.update_transaction(transaction_id, values)
        if anomalies and inserted:
            tx.log_event(
                station_id,
                "meter_anomaly",
                received_at,
                {"transaction_id": transaction_id, "anomalies": anomalies},
            )
        if not inserted:
            return _Stored([], previous, known_offset_wh)
        return _Stored(anomalies, previous, offset)


@dataclass(frozen=True)
class _Stored:
    """What storing samples came to: new anomalies, the last register reading, the offset."""

    anomalies: list[str]
    last: RegisterReading | None
    offset_wh: float


_HANDLERS: dict[type, Callable[[LedgerRules, LedgerStore, Any], Reply]] = {
    BootReported: LedgerRules.boot,
    HeartbeatReceived: LedgerRules.heartbeat,
    StatusReported: LedgerRules.status,
    ConnectionChanged: LedgerRules.connection,
    AuthorizeRequested: LedgerRules.authorize,
    TransactionStarted: LedgerRules.start_transaction,
    MeterValuesReported: LedgerRules.meter_values,
    TransactionStopped: LedgerRules.stop_transaction,
    DataTransferReceived: LedgerRules.data_transfer,
    FirmwareStatusReported: LedgerRules.firmware_status,
    DiagnosticsStatusReported: LedgerRules.diagnostics_status,
    TransactionEventReported: LedgerRules.transaction_event,
    DeviceModelReported: LedgerRules.device_model,
    NotificationReported: LedgerRules.notification,
    PasswordRotation: LedgerRules.password_rotation,
}
