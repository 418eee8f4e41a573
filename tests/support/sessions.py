"""Sessions as `csms sessions list|show --format json` gives them: the fields the tests
compare, and the session the external-client tests run."""

from __future__ import annotations

from typing import Any

#: The fields of a listed session that describe it (all but its id).
SESSION_FIELDS = (
    "station_id",
    "connector_id",
    "id_tag",
    "started_at",
    "ended_at",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_wh",
    "status",
)


def session_summary(session: dict[str, Any]) -> dict[str, Any]:
    """The `SESSION_FIELDS` of a listed session."""
    return {key: session[key] for key in SESSION_FIELDS}


def external_client_session(station_id: str, id_tag: str) -> dict[str, Any]:
    """The summary of the session an external client runs: connector 2, 12 000 Wh to
    19 250 Wh from 10:00 to 10:30 on 2026-03-01."""
    return {
        "station_id": station_id,
        "connector_id": 2,
        "id_tag": id_tag,
        "started_at": "2026-03-01T10:00:00.000000+00:00",
        "ended_at": "2026-03-01T10:30:00.000000+00:00",
        "meter_start_wh": 12_000,
        "meter_stop_wh": 19_250,
        "energy_wh": 7_250,
        "status": "Completed",
    }
