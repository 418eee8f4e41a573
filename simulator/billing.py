"""What each simulated session should cost: the simulator's side of amount reconciliation.

The charger keeps every energy register reading it reports for a transaction (`register_
readings`, called as each transaction message is queued). At the end the simulator prices its
own sessions with the scenario's tariff and the CSMS's rater (`csms.domain.rating`, pure code):
from the readings as the charger sent them, not from what the CSMS stored. If the CSMS lost,
duplicated or misfiled a reading (offline queues, retries, meter resets), the two amounts
differ and reconciliation says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo
from decimal import Decimal
from typing import Any

from csms.domain.metering import ENERGY_REGISTER, energy_wh
from csms.domain.rating import MeterPoint, SessionUsage, rate_session
from csms.domain.tariffs import Tariff
from csms.protocol import v16
from simulator.records import SessionRecord


def register_readings(payload: dict[str, Any]) -> list[tuple[Any, float]]:
    """The total energy import register values (timestamp, Wh) in a MeterValues payload, a
    StopTransaction's transactionData or a 2.x TransactionEvent's meter values."""
    found = []
    for meter_value in payload.get("meterValue", payload.get("transactionData", ())):
        moment = v16.parse_time(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            if sampled.get("measurand", "Energy.Active.Import.Register") != ENERGY_REGISTER:
                continue
            if sampled.get("phase") is not None:
                continue
            # 1.6 writes the unit beside the value (text); 2.x in unitOfMeasure (a number).
            measure = sampled.get("unitOfMeasure") or {}
            unit = sampled.get("unit", measure.get("unit"))
            value = float(sampled["value"]) * 10.0 ** measure.get("multiplier", 0)
            wh = energy_wh(ENERGY_REGISTER, value, unit)
            if wh is not None:
                found.append((moment, wh))
    return found


def session_usage(record: SessionRecord) -> SessionUsage | None:
    """The rater's input for a finished session, as the charger reported it."""
    if record.stopped_at is None or record.meter_stop_wh is None:
        return None
    points = [MeterPoint(record.started_at, float(record.meter_start_wh))]
    points += [MeterPoint(at, wh) for at, wh in record.readings]
    points.append(MeterPoint(record.stopped_at, float(record.meter_stop_wh)))
    points.sort(key=lambda p: p.timestamp)
    return SessionUsage(str(record.transaction_id), record.started_at, record.stopped_at, points)


def expected_amounts(
    records: Iterable[SessionRecord], tariff: Tariff, tz: tzinfo, idle_power_w: int
) -> list[str | None]:
    """Each session's price including VAT (decimal text), None for one that did not end."""
    amounts: list[str | None] = []
    for record in records:
        usage = session_usage(record)
        if usage is None or record.transaction_id is None:
            amounts.append(None)
            continue
        total = rate_session(usage, tariff, tz=tz, idle_power_w=idle_power_w).total_cost
        amounts.append(str(total.incl_vat if total.incl_vat is not None else total.excl_vat))
    return amounts


def amount(text: object) -> Decimal | None:
    """Decimal text (or None/NaN) as a Decimal."""
    if text is None or (isinstance(text, float) and text != text):
        return None
    return Decimal(str(text))
