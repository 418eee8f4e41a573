"""Metering at a virtual charger: the physics of each connector under its charging-profile
limit, the meter values it reports and the connector statuses that follow from them.

It owns the offered power (`offered_w`), charging the cars up to now (`advance`,
`advance_all`, and the periodic physics tick that keeps statuses current), the MeterValues
(periodic samples during a transaction, clock-aligned readings, triggered ones, the
Interruption readings around a meter reset), StatusNotification refreshes, and the timers
that schedule the samples (`sample`, `aligned`, `physics`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from csms.protocol import v16
from simulator.connectors import ConnectorState
from simulator.physics import EnergyRegister

if TYPE_CHECKING:
    from simulator.chargepoint import VirtualChargePoint


class Metering:
    __slots__ = (
        "_aligned_epoch",
        "cp",
    )

    def __init__(self, cp: VirtualChargePoint) -> None:
        self.cp = cp
        self._aligned_epoch = 0.0

    # -- timers -------------------------------------------------------------------------------

    def schedule_aligned(self) -> None:
        cp = self.cp
        interval = cp.config.get_int("ClockAlignedDataInterval")
        if interval <= 0 or not cp.link.accepted:
            cp.timers.cancel(("aligned", 0))
            return
        epoch = cp.epoch()
        self._aligned_epoch = (math.floor(epoch / interval) + 1) * interval
        cp.timers.after(("aligned", 0), self._aligned_epoch - epoch)

    def schedule_sample(self, connector: ConnectorState, *, restart: bool = False) -> None:
        cp = self.cp
        key = ("sample", connector.connector_id)
        interval = cp.config.get_int("MeterValueSampleInterval")
        if connector.tx is None or interval <= 0:
            cp.timers.cancel(key)
        elif restart or cp.timers.deadline(key) is None:
            cp.timers.after(key, interval)

    def _advance_charging(self, connector_id: int) -> ConnectorState | None:
        """Bring a connector with a transaction up to now; None if it has none."""
        connector = self.cp.connectors[connector_id]
        if connector.tx is None:
            return None
        self.advance(connector)
        self.refresh_status(connector_id)
        return connector

    def periodic_sample(self, connector_id: int) -> None:
        cp = self.cp
        connector = self._advance_charging(connector_id)
        if connector is None:
            return
        measurands = cp.config.get_list("MeterValuesSampledData")
        self.send_meter_values(connector, measurands, "Sample.Periodic", cp.timestamp())
        self.schedule_sample(connector, restart=True)

    def aligned_sample(self) -> None:
        cp = self.cp
        moment = v16.iso(datetime.fromtimestamp(self._aligned_epoch, UTC))
        measurands = cp.config.get_list("MeterValuesAlignedData")
        for connector in cp.connectors.values():
            self.advance(connector)
            self.send_meter_values(connector, measurands, "Sample.Clock", moment)
        self.schedule_aligned()

    def physics_tick(self, connector_id: int) -> None:
        if self._advance_charging(connector_id) is None:
            return
        self.cp.timers.after(("physics", connector_id), self.cp.timing.physics_step_s)

    # -- physics, meter values and status ---------------------------------------------------------

    def offered_w(self, connector: ConnectorState, epoch: float | None = None) -> float:
        """What the connector offers: its maximum, or less under a charging profile."""
        if connector.faulted:
            return 0.0
        limit = self.cp.smart.limit_w(
            connector.connector_id,
            self.cp.epoch() if epoch is None else epoch,
            connector.spec.electrical,
            in_tx=connector.tx is not None,
            tx_start=connector.tx.start_epoch if connector.tx else None,
        )
        maximum = connector.spec.max_power_w
        return maximum if limit is None else min(limit, maximum)

    def advance(self, connector: ConnectorState) -> None:
        """Charge the car up to now, piecewise between the moments the limit changes."""
        now = trio.current_time()
        t, connector.last_advance = connector.last_advance, now
        tx, vehicle = connector.tx, connector.vehicle
        if tx is None or vehicle is None or now <= t:
            return
        epoch_now = self.cp.epoch()
        while t < now:
            epoch = epoch_now - (now - t)
            change = self.cp.smart.next_change(
                connector.connector_id, epoch, in_tx=True, tx_start=tx.start_epoch
            )
            end = now if change is None else min(now, t + (change - epoch))
            if end <= t:
                end = now
            wh = vehicle.charge(end - t, self.offered_w(connector, epoch))
            if wh > 0:
                connector.register.add(wh)
                tx.record.exact_energy_wh += wh
            t = end

    def advance_all(self) -> None:
        for connector in self.cp.connectors.values():
            self.advance(connector)

    def reset_register(self, connector: ConnectorState) -> None:
        """The connector's energy register restarts from 0 (see `meter_reset`)."""
        self.advance(connector)
        tx = connector.tx
        before = connector.register.wh
        connector.register = EnergyRegister(0)
        if tx is None:
            return
        tx.closed_segments_wh = tx.register_energy(before)
        tx.segment_start_wh = 0
        tx.record.meter_resets += 1
        moment = self.cp.timestamp()
        readings = [
            {
                "timestamp": moment,
                "sampledValue": [
                    {
                        "value": str(wh),
                        "context": context,
                        "measurand": "Energy.Active.Import.Register",
                        "location": "Outlet",
                        "unit": "Wh",
                    }
                ],
            }
            for wh, context in ((before, "Interruption.Begin"), (0, "Interruption.End"))
        ]
        action, payload, _ = self.cp.dialect.meter_values(
            connector.connector_id, tx, readings, "Interruption", offline=not self.cp.link.online
        )
        self.cp.link.queue_transaction_message(action, payload, tx)

    def send_meter_values(
        self, connector: ConnectorState, measurands: list[str], context: str, timestamp: str
    ) -> None:
        values = connector.sampled_values(measurands, context, self.offered_w(connector))
        if not values:
            return
        cp, tx = self.cp, connector.tx
        action, payload, queued = cp.dialect.meter_values(
            connector.connector_id,
            tx,
            [{"timestamp": timestamp, "sampledValue": values}],
            context,
            offline=not cp.link.online,
        )
        if queued and tx is not None:
            cp.link.queue_transaction_message(action, payload, tx)
        else:
            cp.link.send_nowait(action, payload)

    def station_status(self) -> str:
        return "Available" if self.cp.station_operative else "Unavailable"

    def refresh_status(self, connector_id: int, *, force: bool = False) -> None:
        """Report the connector's status if it changed (or always, with `force`)."""
        cp = self.cp
        previous = None
        if connector_id == 0:
            status, error_code = self.station_status(), "NoError"
        else:
            connector = cp.connectors[connector_id]
            status, error_code = connector.status(self.offered_w(connector)), connector.error_code
            if not force and status == connector.reported_status:
                return
            previous, connector.reported_status = connector.reported_status, status
            cp.notify_changed()
        payload = cp.dialect.status(
            connector_id, status, error_code, cp.timestamp(), previous, force
        )
        if payload is not None:
            cp.link.send_nowait("StatusNotification", payload)
