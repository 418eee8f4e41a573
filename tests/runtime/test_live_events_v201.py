"""2.x TransactionEvents reach the live stream as the same events a 1.6 session makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.domain.events import MeterSample, TransactionEventReported
from csms.domain.replies import (
    AuthorizationStatus,
    IdTagInfo,
    TransactionEventDecision,
)
from csms.runtime.events import live_events

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def register(wh: float, at: datetime) -> MeterSample:
    return MeterSample(
        timestamp=at,
        measurand="Energy.Active.Import.Register",
        value=str(wh),
        numeric=wh,
        unit="Wh",
        phase=None,
        context="Sample.Periodic",
        location=None,
        format=None,
        wh=wh,
    )


def event(kind: str, seq: int, minutes: float, *samples: MeterSample) -> TransactionEventReported:
    return TransactionEventReported(
        station_id="CP201",
        station_tx_id="tx-1",
        event_type=kind,
        seq_no=seq,
        timestamp=T0 + timedelta(minutes=minutes),
        trigger_reason="Authorized" if kind == "Started" else "MeterValuePeriodic",
        offline=False,
        evse_id=1,
        connector_id=1,
        id_tag="TAG" if kind == "Started" else None,
        token_type="ISO14443" if kind == "Started" else None,
        charging_state=None,
        stopped_reason="Local" if kind == "Ended" else None,
        remote_start_id=None,
        reservation_id=None,
        samples=samples,
        received_at=T0 + timedelta(minutes=minutes, seconds=1),
    )


def test_started_updated_ended_become_session_and_meter_events() -> None:
    accepted = TransactionEventDecision(7, "tx-1", IdTagInfo(AuthorizationStatus.ACCEPTED))
    started = live_events(event("Started", 0, 0, register(1000, T0)), accepted)
    assert started == [
        (
            "session_started",
            {
                "transaction_id": 7,
                "connector_id": 1,
                "id_tag": "TAG",
                "status": "Accepted",
                "meter_start_wh": 1000,
                "started_at": "2026-03-02T08:00:00.000000+00:00",
            },
        )
    ]
    decision = TransactionEventDecision(7, "tx-1")
    updated = live_events(event("Updated", 1, 5, register(2000, T0)), decision)
    assert updated[0][0] == "meter" and updated[0][1]["energy_wh"] == 2000
    assert live_events(event("Updated", 2, 6), decision) == []  # nothing measured: no event
    ended = live_events(event("Ended", 3, 10, register(3000, T0)), decision)
    assert [kind for kind, _ in ended] == ["meter", "session_stopped"]
    assert ended[1][1]["meter_stop_wh"] == 3000 and ended[1][1]["reason"] == "Local"
