"""Transactions that 2.x stations number themselves, on the ledger's own transaction records.

A 2.x station names each transaction (a string of its own) and numbers the transaction's
events (`seqNo`). This module keeps the durable map from the station's id to the ledger's
transaction and every event's sequence number, and turns each `TransactionEventReported`
into the ledger's own rules, so that a 2.x session is the same record, with the same
anomaly flags, rating and payment, as a 1.6 one:

- the first event of a transaction opens its ledger transaction. That is normally Started;
  an Updated or Ended that overtook it (or whose Started was lost) opens it flagged
  `start_missing`, and a Started that comes later fills in the start (and rates the session
  then, if it has already ended);
- an event whose seqNo was seen already is a retry: it changes nothing and is answered
  again, so a TransactionEvent retried with a new message id is not counted twice;
- the meter values of Started and Updated are the transaction's samples (the MeterValues
  rule); Ended stops the transaction with the StopTransaction rule, its meter stop being the
  Transaction.End register reading, else the last one known;
- sequence numbers missing between Started and Ended flag `seq_gap` until they arrive;
- a token in Started or Updated is the one the session is charged to (a change mid-session
  is logged); a token in Ended, or with trigger StopAuthorized, is the one that stopped it.

These rules run inside the ledger's batch (`LedgerRules`), on its storage port.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from csms.domain.events import (
    MeterSample,
    MeterValuesReported,
    TransactionEventReported,
    TransactionStopped,
)
from csms.domain.metering import is_register
from csms.domain.ports import LedgerStore
from csms.domain.records import StationTransactionRecord, TransactionRecord, TransactionStatus
from csms.domain.replies import (
    AuthorizationStatus,
    IdTagInfo,
    StopDecision,
    TransactionEventDecision,
)

if TYPE_CHECKING:
    from csms.domain.ledger import LedgerRules

STARTED, UPDATED, ENDED = "Started", "Updated", "Ended"
#: The token type of a station that charges without asking anyone.
NO_AUTHORIZATION = "NoAuthorization"
#: The trigger of an Updated event whose token ends the session (Ended follows it).
STOP_AUTHORIZED = "StopAuthorized"
#: A gap of more sequence numbers than this is counted in the log, not listed.
_LISTED_GAP = 50


def apply(
    rules: LedgerRules, tx: LedgerStore, event: TransactionEventReported
) -> TransactionEventDecision:
    """Record one transaction event; answer with the token's status and, once the
    transaction is rated, its total cost."""
    mapped = tx.get_station_transaction(event.station_id, event.station_tx_id)
    fresh = tx.record_transaction_event(event)
    if mapped is not None and not fresh:
        return _answer_retry(rules, tx, event, mapped)
    token = _charging_token(event)
    info: IdTagInfo | None = None
    if mapped is None:
        mapped, info = _open(rules, tx, event, token)
    elif event.event_type == STARTED and mapped.started_seq_no is None:
        mapped, info = _complete_start(rules, tx, event, mapped, token)
    elif token is not None:
        info = _charge_to(rules, tx, event, mapped, token)
    mapped = _note_details(tx, event, mapped)
    total_cost = None
    if event.event_type == ENDED:
        info, total_cost = _end(rules, tx, event, mapped)
    else:
        _fill_meter_start(tx, event, mapped.transaction_id)
        if event.samples:
            rules.meter_values(
                tx,
                MeterValuesReported(
                    event.station_id,
                    _connector(tx, mapped),
                    mapped.transaction_id,
                    event.samples,
                    event.received_at,
                ),
            )
        if event.trigger_reason == STOP_AUTHORIZED and event.id_tag is not None:
            info = _stop_token(rules, tx, event, mapped)
    _check_sequence(tx, event, mapped)
    if info is None and event.token_type == NO_AUTHORIZATION:
        info = IdTagInfo(AuthorizationStatus.ACCEPTED)
    return TransactionEventDecision(
        mapped.transaction_id,
        event.station_tx_id,
        info,
        total_cost=total_cost,
        running_cost=_running_cost(rules, tx, event, mapped),
    )


# -- opening, and a start that comes late ----------------------------------------------------


def _open(
    rules: LedgerRules, tx: LedgerStore, event: TransactionEventReported, token: str | None
) -> tuple[StationTransactionRecord, IdTagInfo | None]:
    started = event.event_type == STARTED
    info = rules.token_info(tx, token, event.received_at) if token is not None else None
    begin = _register(event.samples, "Transaction.Begin")
    flags = [] if started else ["start_missing"]
    if begin is None and started:
        flags.append("no_meter_start")
    values: dict[str, Any] = {
        "station_id": event.station_id,
        "connector_id": event.evse_id or 0,
        "id_tag": token,
        "auth_status": info.status.value if info is not None else None,
        "meter_start_wh": round(begin.wh) if begin is not None and begin.wh is not None else None,
        "started_at": event.timestamp if started else None,
        "start_received_at": event.received_at if started else None,
        "reservation_id": event.reservation_id,
        "status": TransactionStatus.ACTIVE.value,
    }
    if begin is not None:
        values["last_meter_wh"], values["last_meter_at"] = begin.wh, begin.timestamp
    if flags:
        values["anomalies"] = ",".join(sorted(flags))
        values["needs_reconciliation"] = 1
    if started:
        transaction_id = rules.open_transaction(tx, values, event.received_at)
    else:
        # Not known to have started: nothing earlier on the EVSE is taken to have ended.
        transaction_id = tx.insert_transaction(values)
        tx.log_event(
            event.station_id,
            "transaction_start_missing",
            event.received_at,
            {
                "transaction_id": transaction_id,
                "station_tx_id": event.station_tx_id,
                "seq_no": event.seq_no,
            },
        )
    mapped = StationTransactionRecord(
        event.station_id,
        event.station_tx_id,
        transaction_id,
        evse_id=event.evse_id,
        connector_id=event.connector_id,
        token_type=event.token_type,
        started_seq_no=event.seq_no if started else None,
    )
    tx.insert_station_transaction(mapped, event.received_at)
    if rules.billing is not None and info is not None and _accepted(info):
        assert token is not None
        rules.billing.on_start(tx, transaction_id, token, event.received_at)
    return mapped, info


def _complete_start(
    rules: LedgerRules,
    tx: LedgerStore,
    event: TransactionEventReported,
    mapped: StationTransactionRecord,
    token: str | None,
) -> tuple[StationTransactionRecord, IdTagInfo | None]:
    """The Started of a transaction opened by a later event: the start is known now (and,
    if the transaction has ended already, it is rated now, with the token it started with)."""
    info = _charge_to(rules, tx, event, mapped, token) if token is not None else None
    record = _record(tx, mapped)
    anomalies = set(record.anomalies) - {"start_missing"}
    values: dict[str, Any] = {
        "started_at": event.timestamp,
        "start_received_at": event.received_at,
        "anomalies": ",".join(sorted(anomalies)) or None,
    }
    begin = _register(event.samples, "Transaction.Begin")
    if begin is not None and begin.wh is not None:
        values["meter_start_wh"] = round(begin.wh)
    if event.reservation_id is not None:
        values["reservation_id"] = event.reservation_id
    if record.connector_id == 0 and event.evse_id:
        values["connector_id"] = event.evse_id
    if record.ended_at is not None and record.meter_stop_wh is not None:
        start = values.get("meter_start_wh", record.meter_start_wh) or 0
        values["energy_wh"] = max(
            0, round(record.meter_stop_wh - start + record.register_offset_wh)
        )
    tx.update_transaction(record.id, values)
    tx.update_station_transaction(
        event.station_id, event.station_tx_id, {"started_seq_no": event.seq_no}
    )
    tx.log_event(
        event.station_id,
        "transaction_start_arrived",
        event.received_at,
        {"transaction_id": record.id, "station_tx_id": event.station_tx_id},
    )
    if record.ended_at is not None and rules.billing is not None:
        # It was not rated at its end, having no start then.
        rules.billing.on_stop(tx, _record(tx, mapped), record.ended_at)
    return replace(mapped, started_seq_no=event.seq_no), info


def _fill_meter_start(
    tx: LedgerStore, event: TransactionEventReported, transaction_id: int
) -> None:
    """A transaction that reported no Transaction.Begin reading starts, as far as the ledger
    can tell, at its first register reading."""
    record = tx.get_transaction(transaction_id)
    if record is None or record.meter_start_wh is not None:
        return
    first = _register(event.samples, None)
    if first is None or first.wh is None:
        return
    tx.update_transaction(transaction_id, {"meter_start_wh": round(first.wh)})


# -- tokens --------------------------------------------------------------------------------


def _charging_token(event: TransactionEventReported) -> str | None:
    """The token the session is charged to, if the event names one."""
    if (
        event.id_tag is None
        or event.token_type == NO_AUTHORIZATION
        or event.event_type == ENDED
        or event.trigger_reason == STOP_AUTHORIZED
    ):
        return None
    return event.id_tag


def _charge_to(
    rules: LedgerRules,
    tx: LedgerStore,
    event: TransactionEventReported,
    mapped: StationTransactionRecord,
    token: str,
) -> IdTagInfo:
    record = _record(tx, mapped)
    if record.id_tag == token:
        counted = 1 if record.status is TransactionStatus.ACTIVE else 0
        return rules.token_info(tx, token, event.received_at, already_counted=counted)
    info = rules.token_info(tx, token, event.received_at)
    tx.update_transaction(record.id, {"id_tag": token, "auth_status": info.status.value})
    if record.id_tag is not None:
        tx.log_event(
            event.station_id,
            "id_token_changed",
            event.received_at,
            {
                "transaction_id": record.id,
                "from": record.id_tag,
                "to": token,
                "trigger_reason": event.trigger_reason,
            },
        )
    if rules.billing is not None and _accepted(info) and record.ended_at is None:
        rules.billing.on_start(tx, record.id, token, event.received_at)
    return info


def _stop_token(
    rules: LedgerRules,
    tx: LedgerStore,
    event: TransactionEventReported,
    mapped: StationTransactionRecord,
) -> IdTagInfo:
    """The status of the token that stops the session (its own token counts it once)."""
    assert event.id_tag is not None
    record = _record(tx, mapped)
    counted = (
        1 if record.status is TransactionStatus.ACTIVE and record.id_tag == event.id_tag else 0
    )
    if event.event_type != ENDED:
        tx.update_station_transaction(
            event.station_id, event.station_tx_id, {"stop_id_tag": event.id_tag}
        )
    return rules.token_info(tx, event.id_tag, event.received_at, already_counted=counted)


def _answer_retry(
    rules: LedgerRules,
    tx: LedgerStore,
    event: TransactionEventReported,
    mapped: StationTransactionRecord,
) -> TransactionEventDecision:
    info = None
    if event.token_type == NO_AUTHORIZATION:
        info = IdTagInfo(AuthorizationStatus.ACCEPTED)
    elif event.id_tag is not None:
        record = _record(tx, mapped)
        counted = (
            1 if record.status is TransactionStatus.ACTIVE and record.id_tag == event.id_tag else 0
        )
        info = rules.token_info(tx, event.id_tag, event.received_at, already_counted=counted)
    return TransactionEventDecision(mapped.transaction_id, event.station_tx_id, info)


# -- the end -------------------------------------------------------------------------------


def _end(
    rules: LedgerRules,
    tx: LedgerStore,
    event: TransactionEventReported,
    mapped: StationTransactionRecord,
) -> tuple[IdTagInfo | None, Decimal | None]:
    record = _record(tx, mapped)
    info = None
    stop_tag = mapped.stop_id_tag
    if event.id_tag is not None and event.token_type != NO_AUTHORIZATION:
        info = _stop_token(rules, tx, event, mapped)
        stop_tag = event.id_tag
    end = _register(event.samples, "Transaction.End", latest=True)
    if end is not None and end.wh is not None:
        meter_stop = end.wh
    elif record.last_register is not None:
        meter_stop = record.last_register.wh
    else:
        meter_stop = float(record.meter_start_wh or 0)
    if record.meter_start_wh is None:
        first = _register(event.samples, None)
        start = first.wh if first is not None and first.wh is not None else meter_stop
        tx.update_transaction(record.id, {"meter_start_wh": round(start)})
    stopped = rules.stop_transaction(
        tx,
        TransactionStopped(
            station_id=event.station_id,
            transaction_id=record.id,
            id_tag=stop_tag,
            meter_stop_wh=round(meter_stop),
            timestamp=event.timestamp,
            # The spec lets a station leave the reason out only when it is Local.
            reason=event.stopped_reason or "Local",
            samples=event.samples,
            received_at=event.received_at,
        ),
    )
    tx.update_station_transaction(
        event.station_id, event.station_tx_id, {"ended_seq_no": event.seq_no}
    )
    total = stopped.total_cost if isinstance(stopped, StopDecision) else None
    return info, total


# -- sequence numbers, details, running cost ----------------------------------------------


def _check_sequence(
    tx: LedgerStore, event: TransactionEventReported, mapped: StationTransactionRecord
) -> None:
    """Flag (or clear) `seq_gap` once the transaction has ended: every number from its
    Started to its Ended should have arrived."""
    mapped = tx.get_station_transaction(event.station_id, event.station_tx_id) or mapped
    if mapped.ended_seq_no is None:
        return
    seen = tx.transaction_event_seq_nos(event.station_id, event.station_tx_id)
    low = mapped.started_seq_no if mapped.started_seq_no is not None else seen[0]
    high = mapped.ended_seq_no
    present = {n for n in seen if low <= n <= high}
    missing = max(0, high - low + 1 - len(present))
    record = _record(tx, mapped)
    flagged = "seq_gap" in record.anomalies
    if missing and not flagged:
        tx.update_transaction(
            record.id,
            {
                "anomalies": ",".join(sorted({*record.anomalies, "seq_gap"})),
                "needs_reconciliation": 1,
            },
        )
        gap: dict[str, Any] = {"transaction_id": record.id, "missing": missing}
        if missing <= _LISTED_GAP:
            gap["seq_nos"] = [n for n in range(low, high + 1) if n not in present]
        tx.log_event(event.station_id, "transaction_seq_gap", event.received_at, gap)
    elif not missing and flagged:
        anomalies = set(record.anomalies) - {"seq_gap"}
        tx.update_transaction(record.id, {"anomalies": ",".join(sorted(anomalies)) or None})
        tx.log_event(
            event.station_id,
            "transaction_seq_gap_closed",
            event.received_at,
            {"transaction_id": record.id},
        )


def _note_details(
    tx: LedgerStore, event: TransactionEventReported, mapped: StationTransactionRecord
) -> StationTransactionRecord:
    values: dict[str, Any] = {}
    if event.evse_id is not None and mapped.evse_id is None:
        values["evse_id"] = event.evse_id
    if event.connector_id is not None and mapped.connector_id is None:
        values["connector_id"] = event.connector_id
    if event.charging_state is not None and event.charging_state != mapped.charging_state:
        values["charging_state"] = event.charging_state
    if event.remote_start_id is not None and mapped.remote_start_id is None:
        values["remote_start_id"] = event.remote_start_id
    if event.token_type is not None and mapped.token_type is None:
        values["token_type"] = event.token_type
    if not values:
        return mapped
    tx.update_station_transaction(event.station_id, event.station_tx_id, values)
    return replace(mapped, **values)


def _running_cost(
    rules: LedgerRules,
    tx: LedgerStore,
    event: TransactionEventReported,
    mapped: StationTransactionRecord,
) -> Decimal | None:
    """The session's cost so far, when it is time to tell the station (at most every
    `cost_update_interval_s`, on an Updated event with a register reading)."""
    billing = rules.billing
    if (
        billing is None
        or event.event_type != UPDATED
        or not any(is_register(sample) for sample in event.samples)
    ):
        return None
    last = mapped.cost_pushed_at
    if last is not None and (
        (event.received_at - last).total_seconds() < rules.cost_update_interval_s
    ):
        return None
    cdr = billing.cost_so_far(tx, _record(tx, mapped), event.timestamp)
    if cdr is None:
        return None
    tx.update_station_transaction(
        event.station_id, event.station_tx_id, {"cost_pushed_at": event.received_at}
    )
    incl = cdr.total_cost.incl_vat
    return incl if incl is not None else cdr.total_cost.excl_vat


# -- helpers --------------------------------------------------------------------------------


def _register(
    samples: tuple[MeterSample, ...], context: str | None, *, latest: bool = False
) -> MeterSample | None:
    """The register reading of `context` (else any), earliest or `latest` by time."""
    readings = sorted((s for s in samples if is_register(s)), key=lambda s: s.timestamp)
    if not readings:
        return None
    wanted = [s for s in readings if s.context == context] or readings
    return wanted[-1] if latest else wanted[0]


def _record(tx: LedgerStore, mapped: StationTransactionRecord) -> TransactionRecord:
    record = tx.get_transaction(mapped.transaction_id)
    assert record is not None, f"ledger transaction {mapped.transaction_id} is gone"
    return record


def _connector(tx: LedgerStore, mapped: StationTransactionRecord) -> int:
    return _record(tx, mapped).connector_id


def _accepted(info: IdTagInfo) -> bool:
    return info.status is AuthorizationStatus.ACCEPTED
