"""Sessions, meter values, status history, CDRs and the ledger's URL and time arguments, on
the hand-built ledger (`analytics_ledger`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from csms.analytics import (
    AnalyticsError,
    cdrs,
    meter_values,
    month_bounds,
    open_ledger,
    rating_inputs,
    sessions,
    site_of,
    status_history,
)
from csms.analytics.sessions import SESSION_COLUMNS


def test_sessions_have_energy_duration_idle_cost_token_driver_station_and_site(
    ledger_url: str,
) -> None:
    frame = sessions(ledger_url).set_index("session_id")
    assert list(frame.reset_index().columns) == list(SESSION_COLUMNS)
    assert frame["station_id"].tolist() == ["A-1", "A-2", "B-1", "A-1", "A-2"]
    assert frame["site"].tolist() == ["A", "A", "B", "A", "A"]
    assert frame["driver_id"].fillna("-").tolist() == ["D1", "-", "D1", "D2", "-"]
    assert frame["energy_wh"].tolist() == [11000.0, 3000.0, 2000.0, 5000.0, 1000.0]
    assert frame["duration_s"].iloc[:4].tolist() == [7200.0, 10800.0, 3600.0, 3600.0]
    assert pd.isna(frame.loc[5, "duration_s"])
    assert frame["charging_s"].tolist() == [3600.0, 3600.0, 3600.0, 3600.0, 1800.0]
    # Idle: plugged in below the idle power; an active session up to its last reading.
    assert frame["idle_s"].tolist() == [3600.0, 7200.0, 0.0, 0.0, 1800.0]
    assert frame["max_power_kw"].tolist() == [11.0, 3.0, 2.0, 5.0, 2.0]
    assert frame["cost_incl_vat"].iloc[:3].tolist() == [5.24, 1.43, 0.95]
    assert frame["cost_excl_vat"].iloc[3:].isna().all()
    assert frame["status"].tolist() == ["Completed"] * 4 + ["Active"]


def test_sessions_are_bounded_by_their_start(ledger_url: str) -> None:
    monday = sessions(ledger_url, since="2026-03-02", until="2026-03-03")
    assert monday["session_id"].tolist() == [1, 2, 3]
    assert sessions(ledger_url, since="2026-03-03T10:00:00Z")["session_id"].tolist() == [4, 5]


def test_idle_power_decides_what_counts_as_charging(ledger_url: str) -> None:
    # At 4 kW and more, session 2's hour at 3 kW is idle too.
    frame = sessions(ledger_url, idle_power_w=4000).set_index("session_id")
    assert frame.loc[2, ["charging_s", "idle_s"]].tolist() == [0.0, 10800.0]


def test_meter_values_are_one_row_per_sampled_value(ledger_url: str) -> None:
    frame = meter_values(ledger_url)
    assert len(frame) == 7
    power = frame[frame["measurand"] == "Power.Active.Import"]
    assert power[["station_id", "site", "session_id", "value", "unit"]].values.tolist() == [
        ["A-1", "A", 1, 11000.0, "W"]
    ]
    assert pd.isna(power["wh"].iloc[0])
    tuesday = meter_values(ledger_url, since="2026-03-03", until="2026-03-04")
    assert tuesday["wh"].tolist() == [1000.0, 1000.0]


def test_status_history_has_each_status_duration(ledger_url: str) -> None:
    frame = status_history(ledger_url)
    fault = frame[(frame["station_id"] == "A-1") & (frame["status"] == "Faulted")]
    assert fault[["connector_id", "error_code", "duration_s"]].values.tolist() == [
        [1, "GroundFailure", 7200.0]
    ]
    # The current status of a connector has no end yet.
    last = frame[(frame["station_id"] == "B-1")].iloc[-1]
    assert last["status"] == "Faulted" and pd.isna(last["duration_s"])
    # Bounded by reception; a status's end is found beyond the bound.
    morning = status_history(ledger_url, until="2026-03-02T07:00:00Z")
    assert len(morning) == 5
    assert morning[morning["status"] == "Faulted"]["duration_s"].tolist() == [7200.0]


def test_cdrs_carry_their_ocpi_totals(ledger_url: str) -> None:
    frame = cdrs(ledger_url)
    assert frame["session_id"].tolist() == [1, 2, 3]
    assert frame["total_energy_kwh"].tolist() == [11.0, 3.0, 2.0]
    assert frame["total_parking_time_h"].tolist() == [1.0, 2.0, 0.0]
    assert frame["driver_id"].fillna("-").tolist() == ["D1", "-", "D1"]
    assert cdrs(ledger_url, since="2026-03-02T20:00:00Z")["session_id"].tolist() == [3]


def test_rating_inputs_are_the_readings_the_ledger_rates(ledger_url: str) -> None:
    samples, finished = rating_inputs(ledger_url, until="2026-03-03")
    assert finished["session_id"].tolist() == [1, 2, 3]
    first = samples[samples["session_id"] == 1].sort_values("timestamp")
    assert first["register_wh"].tolist() == [1000.0, 6500.0, 12000.0, 12000.0]
    # No samples: the meter start and stop.
    assert samples[samples["session_id"] == 3]["register_wh"].tolist() == [500.0, 2500.0]


def test_site_is_the_station_id_up_to_its_last_dash() -> None:
    ids = pd.Series(["CITY-AC-0001", "DEPOT-12", "SOLO", "A-"])
    assert site_of(ids).tolist() == ["CITY-AC", "DEPOT", "SOLO", "A"]


def test_month_bounds_are_local_midnights() -> None:
    start, end = month_bounds("2026-03", "Europe/Berlin")
    assert start == pd.Timestamp("2026-02-28T23:00:00Z")
    # Summer time began on 29 March.
    assert end == pd.Timestamp("2026-03-31T22:00:00Z")
    with pytest.raises(AnalyticsError, match="YYYY-MM"):
        month_bounds("2026-3")


def test_bad_urls_and_databases_are_refused(tmp_path: Path, ledger_url: str) -> None:
    with (
        pytest.raises(AnalyticsError, match="cannot connect to PostgreSQL"),
        open_ledger("postgresql://nobody@127.0.0.1:1/csms"),
    ):
        pass
    with (
        pytest.raises(AnalyticsError, match="no ledger"),
        open_ledger(f"sqlite:///{tmp_path / 'missing.db'}"),
    ):
        pass
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with (
        pytest.raises(AnalyticsError, match="not a CSMS ledger"),
        open_ledger(f"sqlite:///{other}"),
    ):
        pass
    with pytest.raises(AnalyticsError, match="after"):
        sessions(ledger_url, since="2026-03-03", until="2026-03-02")


def test_an_empty_ledger_gives_empty_frames_and_a_report(tmp_path: Path) -> None:
    from csms.analytics import monthly_report_html, uptime, utilization
    from csms.storage.schema import migrate

    path = tmp_path / "empty.db"
    db = sqlite3.connect(path)
    migrate(db)
    db.close()
    url = f"sqlite:///{path}"
    assert sessions(url).empty and meter_values(url).empty and cdrs(url).empty
    assert utilization(url, "2026-03-01", "2026-03-02").empty
    assert uptime(url, "2026-03-01", "2026-03-02").empty
    assert "No fault episodes" in monthly_report_html(url, "2026-03")


def test_reads_see_one_snapshot_while_the_server_writes(ledger_url: str) -> None:
    path = ledger_url.removeprefix("sqlite:///")
    with open_ledger(ledger_url) as ledger:
        before = len(sessions(ledger))
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute(
            "INSERT INTO transactions (id, station_id, connector_id, status, started_at)"
            " VALUES (99, 'A-1', 1, 'Active', '2026-03-05T00:00:00.000000+00:00')"
        )
        assert len(sessions(ledger)) == before
        writer.execute("DELETE FROM transactions WHERE id = 99")
        writer.close()
