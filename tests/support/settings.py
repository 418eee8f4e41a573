"""Settings for a test CSMS: a temporary SQLite file, loopback, ports chosen by the OS.

A module of its own (not `conftest`): several test folders have a conftest.py, and
`from conftest import ...` would find whichever was imported first.
"""

from __future__ import annotations

from pathlib import Path

from csms.config import Settings
from csms.domain.ledger import UnknownStationPolicy


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'csms.db'}",
        "ocpp_host": "127.0.0.1",
        "ocpp_port": 0,
        "api_host": "127.0.0.1",
        "api_port": 0,
        "unknown_stations": UnknownStationPolicy.ACCEPT,
        "log_level": "warning",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
