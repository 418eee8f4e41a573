"""Shared fixtures: settings on a temporary SQLite file, an in-process CSMS on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from support.settings import make_settings

from csms.config import Settings
from csms.runtime.server import Csms, run_csms


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
