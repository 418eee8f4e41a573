"""Helpers for the wire-mode simulator tests (not a test module).

- `scenario_file`: a small fleet scenario (four 2-connector chargers, 10 busy minutes).
- `simulate`: `simulator run` in wire mode against a `csms serve` process, reconciled with
  its ledger; its JSON summary.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from support.server_process import ServerProcess

from simulator.cli import main


def scenario_file(directory: Path, prefix: str) -> Path:
    """Four 2-connector chargers for 10 simulated minutes of the morning peak, arrivals
    scaled up so that sessions happen."""
    path = directory / f"{prefix.lower()}.toml"
    path.write_text(
        "\n".join(
            [
                f'name = "{prefix.lower()}"',
                "seed = 5",
                "start = 2026-03-02T08:30:00+01:00",
                'duration = "10m"',
                "[[stations]]",
                f'prefix = "{prefix}"',
                "count = 4",
                "connectors = 2",
                "max_power_w = 22000",
                "[drivers]",
                "scale = 300",
                "[charger]",
                "meter_interval_s = 60",
            ]
        )
    )
    return path


def simulate(
    capsys: pytest.CaptureFixture[str],
    scenario_path: Path,
    url: str,
    server: ServerProcess,
    *extra: str,
) -> dict[str, object]:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "run",
                str(scenario_path),
                "--url",
                url,
                "--ledger",
                f"sqlite:///{server.db_path}",
                "--rate",
                "120",
                "--json",
                *extra,
            ]
        )
    out = capsys.readouterr().out
    assert exited.value.code == 0, out
    summary: dict[str, object] = orjson.loads(out.strip().splitlines()[-1])
    return summary
