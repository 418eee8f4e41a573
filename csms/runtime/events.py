"""The live event broadcast: what happened in the fleet, as the ledger committed it.

The ledger actor reports each committed batch; `live_events` turns its events and replies
into `LiveEvent`s (status changes, session starts and stops, meter updates, connections,
boots, firmware and diagnostics status), and services add their own (alerts, campaigns).
`EventBus.publish` never blocks: every subscriber has a bounded buffer, and one that falls
behind loses events (it is told how many) rather than slowing the ledger. A short history
lets a reconnecting subscriber resume after the last id it saw.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trio

from csms.domain.events import (
    BootReported,
    ConnectionChanged,
    DiagnosticsStatusReported,
    DomainEvent,
    FirmwareStatusReported,
    HeartbeatReceived,
    MeterSample,
    MeterValuesReported,
    StatusReported,
    TransactionEventReported,
    TransactionStarted,
    TransactionStopped,
)
from csms.domain.replies import BootDecision, Reply, StartDecision, TransactionEventDecision
from csms.storage.timestamps import to_text


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str
    station_id: str | None
    at: str
    data: dict[str, Any]
    id: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "station_id": self.station_id,
            "at": self.at,
            "data": self.data,
        }


@dataclass
class Subscription:
    receive: trio.MemoryReceiveChannel[LiveEvent]
    send: trio.MemorySendChannel[LiveEvent]
    #: Events this subscriber lost because its buffer was full.
    dropped: int = 0


@dataclass
class EventBus:
    buffer: int = 1000
    history: int = 1000
    _subscribers: list[Subscription] = field(default_factory=list)
    _recent: deque[LiveEvent] = field(default_factory=deque)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    #: Until someone subscribes (a server without the API: the in-process simulator) the
    #: ledger's batches are not turned into events at all.
    _wanted: bool = False

    def publish(
        self, kind: str, station_id: str | None, at: datetime, data: dict[str, Any]
    ) -> None:
        event = LiveEvent(kind, station_id, to_text(at) or "", data, next(self._ids))
        self._recent.append(event)
        while len(self._recent) > self.history:
            self._recent.popleft()
        for subscriber in self._subscribers:
            try:
                subscriber.send.send_nowait(event)
            except trio.WouldBlock:
                subscriber.dropped += 1

    def recent_after(self, last_id: int) -> list[LiveEvent]:
        return [event for event in self._recent if event.id > last_id]

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        send, receive = trio.open_memory_channel[LiveEvent](self.buffer)
        subscription = Subscription(receive, send)
        self._subscribers.append(subscription)
        self._wanted = True
        try:
            yield subscription
        finally:
            self._subscribers.remove(subscription)
            send.close()
            receive.close()

    def ledger_committed(self, committed: Sequence[tuple[DomainEvent, Reply]]) -> None:
        """The ledger actor's report of a durable batch."""
        if not self._wanted:
            return
        for event, reply in committed:
            for kind, data in live_events(event, reply):
                self.publish(kind, event.station_id, event.received_at, data)


def _meter_data(samples: Sequence[MeterSample]) -> dict[str, Any]:
    """The latest energy register (Wh) and active power (W) of a batch of samples."""
    data: dict[str, Any] = {}
    for sample in samples:
        if sample.wh is not None and sample.measurand == "Energy.Active.Import.Register":
            data["energy_wh"] = sample.wh
            data["timestamp"] = to_text(sample.timestamp)
        elif (
            sample.measurand == "Power.Active.Import"
            and sample.numeric is not None
            and sample.phase is None
        ):
            scale = 1000.0 if (sample.unit or "W") == "kW" else 1.0
            data["power_w"] = sample.numeric * scale
        elif sample.measurand == "SoC" and sample.numeric is not None:
            data["soc"] = sample.numeric
    return data


def live_events(event: DomainEvent, reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """The live events (kind, data) one committed domain event makes."""
    match event:
        case StatusReported():
            return [
                (
                    "status",
                    {
                        "connector_id": event.connector_id,
                        "status": event.status,
                        "error_code": event.error_code,
                        "info": event.info,
                    },
                )
            ]
        case TransactionStarted():
            if not isinstance(reply, StartDecision):
                return []
            return [
                (
                    "session_started",
                    {
                        "transaction_id": reply.transaction_id,
                        "connector_id": event.connector_id,
                        "id_tag": event.id_tag,
                        "status": reply.id_tag_info.status.value,
                        "meter_start_wh": event.meter_start_wh,
                        "started_at": to_text(event.timestamp),
                    },
                )
            ]
        case MeterValuesReported():
            data = _meter_data(event.samples)
            if event.transaction_id is None and not data:
                return []
            return [
                (
                    "meter",
                    {
                        "transaction_id": event.transaction_id,
                        "connector_id": event.connector_id,
                        **data,
                    },
                )
            ]
        case TransactionStopped():
            return [
                (
                    "session_stopped",
                    {
                        "transaction_id": event.transaction_id,
                        "meter_stop_wh": event.meter_stop_wh,
                        "reason": event.reason,
                        "ended_at": to_text(event.timestamp),
                    },
                )
            ]
        case ConnectionChanged():
            return [("connection", {"state": event.state, **event.detail})]
        case BootReported():
            status = reply.status.value if isinstance(reply, BootDecision) else None
            return [
                (
                    "boot",
                    {
                        "vendor": event.vendor,
                        "model": event.model,
                        "firmware_version": event.firmware_version,
                        "status": status,
                    },
                )
            ]
        case FirmwareStatusReported():
            status_data: dict[str, Any] = {"status": event.status}
            if event.request_id is not None:
                status_data["request_id"] = event.request_id
            return [("firmware", status_data)]
        case DiagnosticsStatusReported():
            return [("diagnostics", {"status": event.status})]
        case HeartbeatReceived():
            return [("heartbeat", {})]
        case TransactionEventReported():
            if isinstance(reply, TransactionEventDecision):
                return _transaction_event(event, reply)
    return []


def _transaction_event(
    event: TransactionEventReported, reply: TransactionEventDecision
) -> list[tuple[str, dict[str, Any]]]:
    """A 2.x TransactionEvent as the same live events a 1.6 start, meter values and stop
    make, so the dashboard and the alerts need not know the version."""
    common = {"transaction_id": reply.transaction_id, "connector_id": event.evse_id}
    found: list[tuple[str, dict[str, Any]]] = []
    data = _meter_data(event.samples)
    if event.event_type == "Started":
        info = reply.id_tag_info
        found.append(
            (
                "session_started",
                {
                    **common,
                    "id_tag": event.id_tag,
                    "status": info.status.value if info is not None else None,
                    "meter_start_wh": data.get("energy_wh"),
                    "started_at": to_text(event.timestamp),
                },
            )
        )
    elif data:
        found.append(("meter", {**common, **data}))
    if event.event_type == "Ended":
        found.append(
            (
                "session_stopped",
                {
                    "transaction_id": reply.transaction_id,
                    "meter_stop_wh": data.get("energy_wh"),
                    "reason": event.stopped_reason,
                    "ended_at": to_text(event.timestamp),
                },
            )
        )
    return found
