"""Meter data rules: unit normalisation to Wh and the anomalies the ledger flags.

Anomalies are flagged, never rejected: the charger's data is kept as it came.
"""

from __future__ import annotations

from csms.domain.events import MeterSample
from csms.domain.records import RegisterReading

ENERGY_REGISTER = "Energy.Active.Import.Register"
_WH_FACTORS = {"Wh": 1.0, "kWh": 1000.0, "varh": 1.0, "kvarh": 1000.0}
#: A register that falls to at most this share of its previous value is read as a reset.
RESET_SHARE = 0.01
#: Above this average power between two readings a rise is implausible for any charger.
MAX_PLAUSIBLE_POWER_W = 1_000_000.0


def energy_wh(measurand: str, value: float | None, unit: str | None) -> float | None:
    """The energy in Wh of an energy measurand's value (OCPP's default unit is Wh)."""
    if value is None or not measurand.startswith("Energy."):
        return None
    factor = _WH_FACTORS.get(unit or "Wh")
    return None if factor is None else value * factor


def is_register(sample: MeterSample) -> bool:
    """The sample is the transaction's total import register (phase-summed)."""
    return sample.measurand == ENERGY_REGISTER and sample.phase is None and sample.wh is not None


def register_anomaly(
    previous: RegisterReading | None, sample: MeterSample | RegisterReading
) -> str | None:
    """Name what is wrong with a register reading after `previous`, or None if plausible."""
    if previous is None or sample.wh is None:
        return None
    delta = sample.wh - previous.wh
    if delta < 0:
        if sample.wh <= previous.wh * RESET_SHARE:
            return "register_reset"
        return "register_backwards"
    seconds = (sample.timestamp - previous.timestamp).total_seconds()
    if delta > 0 and (seconds <= 0 or delta * 3600.0 / seconds > MAX_PLAUSIBLE_POWER_W):
        return "implausible_jump"
    return None
