"""A virtual charger's connectors: what is plugged in, the running transaction, the
reservation and availability, the status they add up to, and the meter readings.

Pure state and rules, no I/O: the charger (`chargepoint`) changes these and reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.physics import EnergyRegister, Vehicle
from simulator.records import SessionRecord
from simulator.smart_charging import Electrical


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """A connector's electrical side: its maximum power, and the voltage and phases that
    turn a limit in amperes into watts (DC: the battery-side voltage, one "phase")."""

    max_power_w: float = 22_000.0
    voltage: float = 230.0
    phases: int = 3

    @property
    def electrical(self) -> Electrical:
        return Electrical(self.voltage, self.phases, self.max_power_w)


@dataclass(slots=True)
class Reservation:
    reservation_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry_epoch: float


@dataclass(slots=True)
class RemoteStart:
    """A remote start waiting for its car (ConnectionTimeOut), or for its authorization."""

    id_tag: str
    profile: dict[str, Any] | None
    #: Authorized (or AuthorizeRemoteTxRequests is off): it starts when the car is there.
    ready: bool = False
    #: The CSMS's id for the request (2.x), which the transaction's start names.
    remote_start_id: int | None = None


@dataclass(slots=True)
class ChargeSession:
    """A running transaction: its record, and what its messages and meter need."""

    record: SessionRecord
    start_epoch: float
    #: The register at the start of the current meter segment (a meter reset starts one).
    segment_start_wh: int
    closed_segments_wh: int = 0
    #: The StartTransaction was given up (refused too often): drop the rest of it.
    abandoned: bool = False
    begin_values: list[dict[str, Any]] = field(default_factory=list)
    #: 2.x: the charger's own id for the transaction, and its next event's sequence number.
    station_tx_id: str | None = None
    seq_no: int = 0

    @property
    def transaction_id(self) -> int | None:
        return self.record.transaction_id

    def register_energy(self, register_wh: int) -> int:
        return self.closed_segments_wh + register_wh - self.segment_start_wh


class ConnectorState:
    __slots__ = (
        "connector_id",
        "error_code",
        "faulted",
        "finishing",
        "last_advance",
        "operative",
        "register",
        "remote_start",
        "reported_status",
        "reservation",
        "scheduled_operative",
        "spec",
        "tx",
        "vehicle",
    )

    def __init__(self, connector_id: int, spec: ConnectorSpec, register_wh: int) -> None:
        self.connector_id = connector_id
        self.spec = spec
        self.register = EnergyRegister(register_wh)
        self.vehicle: Vehicle | None = None
        self.tx: ChargeSession | None = None
        self.reservation: Reservation | None = None
        self.remote_start: RemoteStart | None = None
        self.operative = True
        #: A ChangeAvailability that waits for the running transaction to end.
        self.scheduled_operative: bool | None = None
        self.faulted = False
        self.error_code = "NoError"
        #: The transaction ended and the cable is still plugged in.
        self.finishing = False
        self.last_advance = 0.0
        self.reported_status: str | None = None

    @property
    def free(self) -> bool:
        """Nobody uses it: no car, no transaction, no pending remote start."""
        return self.vehicle is None and self.tx is None and self.remote_start is None

    def status(self, offered_w: float) -> str:
        """The OCPP 1.6 ChargePointStatus this connector is in."""
        if self.faulted:
            return "Faulted"
        if self.tx is not None:
            if offered_w <= 0:
                return "SuspendedEVSE"
            if self.vehicle is None or self.vehicle.full:
                return "SuspendedEV"
            return "Charging"
        if not self.operative:
            return "Unavailable"
        if self.vehicle is not None and self.finishing:
            return "Finishing"
        if self.vehicle is not None or self.remote_start is not None:
            return "Preparing"
        if self.reservation is not None:
            return "Reserved"
        return "Available"

    def power_w(self, offered_w: float) -> float:
        """What the car draws now (0 outside a transaction)."""
        if self.tx is None or self.vehicle is None:
            return 0.0
        return self.vehicle.power_w(offered_w)

    def sampled_values(
        self, measurands: list[str], context: str, offered_w: float
    ) -> list[dict[str, Any]]:
        """One sampledValue per measurand (SoC only while a car is plugged in)."""
        power = self.power_w(offered_w)
        amps_per_volt = self.spec.voltage * self.spec.phases
        values: list[dict[str, Any]] = []
        for measurand in measurands:
            value: str
            unit: str
            location = "Outlet"
            if measurand == "Energy.Active.Import.Register":
                value, unit = str(self.register.wh), "Wh"
            elif measurand == "Power.Active.Import":
                value, unit = f"{power:.1f}", "W"
            elif measurand == "Power.Offered":
                value, unit = f"{offered_w:.1f}", "W"
            elif measurand == "Current.Import":
                value, unit = f"{power / amps_per_volt:.2f}", "A"
            elif measurand == "Current.Offered":
                value, unit = f"{offered_w / amps_per_volt:.2f}", "A"
            elif measurand == "Voltage":
                value, unit = f"{self.spec.voltage:.1f}", "V"
            elif measurand == "SoC":
                if self.vehicle is None:
                    continue
                value, unit, location = f"{self.vehicle.soc * 100:.1f}", "Percent", "EV"
            else:
                continue
            values.append(
                {
                    "value": value,
                    "context": context,
                    "measurand": measurand,
                    "location": location,
                    "unit": unit,
                }
            )
        return values
