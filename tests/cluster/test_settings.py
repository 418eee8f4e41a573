"""The [cluster] settings and --workers: bad values get clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.server_process import csms_env, run_cli

from csms.config import ConfigError, load_settings


def test_cluster_settings_come_from_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "csms.toml"
    config.write_text(
        '[database]\nurl = "postgresql://csms@db/csms"\n'
        "[ocpp]\nport = 9100\n[api]\nport = 8100\n"
        '[cluster]\nnode_name = "east-1"\nheartbeat_s = 2\nnode_ttl_s = 7.5\nworkers = 4\n'
    )

    settings = load_settings(config)

    assert (
        settings.cluster_node_name,
        settings.cluster_heartbeat_s,
        settings.cluster_node_ttl_s,
        settings.workers,
    ) == ("east-1", 2, 7.5, 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cluster_heartbeat_s": 0}, "cluster_heartbeat_s: Input should be greater than 0"),
        (
            {"cluster_heartbeat_s": 5, "cluster_node_ttl_s": 5},
            "cluster.node_ttl_s (5) must be longer than cluster.heartbeat_s (5)",
        ),
        ({"workers": 0}, "workers: Input should be greater than or equal to 1"),
        (
            {"workers": 2, "database_url": "sqlite:///csms.db"},
            "2 workers need a shared PostgreSQL database",
        ),
        (
            {"workers": 2, "database_url": "postgresql://db/csms", "ocpp_port": 0},
            "workers share fixed ports: ocpp.port and api.port cannot be 0",
        ),
    ],
)
def test_bad_cluster_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(**overrides)
    assert message in str(refused.value)


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    result = run_cli(["serve", "--workers", "2"], csms_env(tmp_path / "csms.db"), cwd=tmp_path)

    assert result.returncode != 0
    assert "2 workers need a shared PostgreSQL database" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "csms.db").exists()
