"""Shared fixtures: settings on a temporary SQLite file, an in-process CSMS on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from csms.config import Settings
from csms.domain.ledger import UnknownStationPolicy
from csms.runtime.server import Csms, run_csms


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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def csms(settings: Settings) -> AsyncIterator[Csms]:
    """A real CSMS on a loopback port with a real SQLite file, torn down after the test."""
    async with trio.open_nursery() as nursery:
        server: Csms = await nursery.start(run_csms, settings)
        yield server
        nursery.cancel_scope.cancel()
