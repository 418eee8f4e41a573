"""The CSMS's Prometheus metrics, one registry per running server.

Counted where things happen: OCPP messages by direction, action and outcome, with latency
histograms (connection actors), the ledger's commit batch sizes and latencies (ledger
actor). Read when scraped: connected chargers by OCPP version, mailbox depths, the ledger's
queue, and the fleet totals (active sessions, energy delivered) that `/metrics` refreshes
from the database just before it renders.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from csms.domain.events import DomainEvent
from csms.domain.replies import Reply

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class CsmsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "csms_ocpp_messages",
            "OCPP CALLs by direction (inbound: from chargers), action and outcome.",
            ["direction", "action", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "csms_ocpp_call_seconds",
            "Inbound: from CALL to answer sent. Outbound: from CALL sent to answer received.",
            ["direction", "action"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "csms_ledger_batch_events",
            "Events per ledger group commit.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "csms_ledger_commit_seconds",
            "Time to apply and durably commit one ledger batch.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fleet = FleetCollector()
        self.registry.register(self.fleet)
        # Labelled children, cached: `labels()` is the costly part of counting a message.
        self._children: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def message(self, direction: str, action: str, outcome: str, seconds: float | None) -> None:
        key = (direction, action, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.messages.labels(*key)
        child.inc()
        if seconds is not None:
            timer = self._timers.get((direction, action))
            if timer is None:
                timer = self._timers[(direction, action)] = self.latency.labels(direction, action)
            timer.observe(seconds)

    def ledger_committed(
        self, committed: Sequence[tuple[DomainEvent, Reply]], seconds: float
    ) -> None:
        self.batch_size.observe(len(committed))
        self.commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FleetCollector(Collector):
    """Gauges read at scrape time from what the server holds (set by the `/metrics` route)."""

    def __init__(self) -> None:
        self.versions: Tally[str] = Tally()
        self.mailbox_depths: list[int] = []
        self.ledger_queue = 0
        self.active_sessions = 0.0
        self.energy_wh = 0.0
        self.sse_subscribers = 0

    def collect(self) -> Iterable[Metric]:
        connected = GaugeMetricFamily(
            "csms_connected_chargers",
            "Chargers connected now, by OCPP version.",
            labels=["version"],
        )
        for version, count in sorted(self.versions.items()):
            connected.add_metric([version], count)
        yield connected
        yield GaugeMetricFamily(
            "csms_mailbox_depth_total",
            "Commands waiting in all connection mailboxes.",
            value=sum(self.mailbox_depths),
        )
        yield GaugeMetricFamily(
            "csms_mailbox_depth_max",
            "Commands waiting in the fullest connection mailbox.",
            value=max(self.mailbox_depths, default=0),
        )
        yield GaugeMetricFamily(
            "csms_ledger_queue_depth",
            "Events waiting for the ledger actor.",
            value=self.ledger_queue,
        )
        yield GaugeMetricFamily(
            "csms_active_sessions", "Charging sessions in progress.", value=self.active_sessions
        )
        yield CounterMetricFamily(
            "csms_energy_delivered_wh",
            "Energy delivered in all recorded sessions (Wh).",
            value=self.energy_wh,
        )
        yield GaugeMetricFamily(
            "csms_event_stream_subscribers",
            "Live event stream subscribers (dashboards, SSE clients, services).",
            value=self.sse_subscribers,
        )
