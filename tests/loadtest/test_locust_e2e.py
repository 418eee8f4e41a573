"""Locust users against live servers on loopback, as subprocesses: a headless run against
`csms serve` with the chargers registered as the README says, a CALLERROR counted as a
failure, one master with two workers, the 2.0.1 plumbing, and the capacity report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.server_process import ServerProcess, run_cli, running_server

from loadtest.bench import REPO_ROOT, child_env, free_port
from loadtest.locust_fleet import worker_of
from loadtest.locust_run import (
    AGGREGATED,
    locust_argv,
    locust_worker_argv,
    read_failures,
    read_stats,
)

pytestmark = pytest.mark.slow

#: Realistic pacing squeezed into seconds: sessions, meter values and heartbeats all show.
QUICK_REALISTIC = {
    "profile": "realistic",
    "heartbeat_interval": 1,
    "meter_interval": 0.5,
    "sessions_per_day": 86400,
    "session_minutes": 0.02,
}
SESSION_ACTIONS = {
    "BootNotification",
    "StatusNotification",
    "Heartbeat",
    "Authorize",
    "StartTransaction",
    "MeterValues",
    "StopTransaction",
}


def base_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.ocpp_port}/ocpp"


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout
    )


def register(server: ServerProcess, tmp_path: Path, *fleet_args: str) -> None:
    """`python -m loadtest.locust_fleet ... > X.csv && csms X import X.csv`."""
    kind = fleet_args[0]
    done = run([sys.executable, "-m", "loadtest.locust_fleet", *fleet_args])
    assert done.returncode == 0, done.stderr
    path = tmp_path / f"{kind}.csv"
    path.write_text(done.stdout)
    imported = run_cli([kind, "import", str(path)], server.env)
    assert imported.returncode == 0, imported.stderr


def cli_json(server: ServerProcess, *args: str) -> Any:
    done = run_cli([*args, "--format", "json"], server.env)
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def test_headless_run_against_csms_serve_has_no_failures(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    with running_server(tmp_path, unknown_stations="reject") as server:
        register(server, tmp_path, "stations", "--prefix", "E2E-", "--users", "5")
        register(server, tmp_path, "tokens", "--tokens", "20")
        options = QUICK_REALISTIC | {"id_prefix": "E2E-", "tokens": 20}
        argv = locust_argv(base_url(server), 5, 5, prefix, run_time_s=5, options=options)
        done = run(argv)
        sessions = cli_json(server, "sessions", "list", "--status", "Completed")
    stats = read_stats(prefix)
    assert done.returncode == 0, done.stderr[-3000:]
    assert stats[AGGREGATED].failures == 0 and read_failures(prefix) == []
    assert {t for t, _ in stats} == {"OCPP1.6", "WS", ""}
    assert {n for t, n in stats if t == "OCPP1.6"} == SESSION_ACTIONS
    assert stats[("WS", "connect")].requests == 5
    assert stats[("OCPP1.6", "BootNotification")].requests == 5
    assert all(s["station_id"].startswith("E2E-0-") for s in sessions) and len(sessions) >= 5


def test_a_callerror_is_a_failure(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    locustfile = Path(__file__).with_name("locustfile_invalid.py")
    with running_server(tmp_path) as server:
        register(server, tmp_path, "tokens", "--tokens", "10")
        options = {"profile": "stress", "tokens": 10, "id_prefix": "BAD-"}
        argv = locust_argv(
            base_url(server), 3, 3, prefix, run_time_s=3, options=options, locustfile=locustfile
        )
        done = run(argv)
    assert done.returncode == 1  # Locust's exit code when any request failed
    stats = read_stats(prefix)
    status = stats[("OCPP1.6", "StatusNotification")]
    assert status.failures >= 3 and status.failures < status.requests  # only connector 1's
    others = [s for k, s in stats.items() if k[1] not in ("StatusNotification", "Aggregated")]
    assert others and all(s.failures == 0 for s in others)
    failures = read_failures(prefix)
    assert {f["Name"] for f in failures} == {"StatusNotification"}
    assert all("CALLERROR PropertyConstraintViolation" in f["Error"] for f in failures)


def test_master_with_two_workers_aggregates_both(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    port = free_port()
    options = QUICK_REALISTIC | {"id_prefix": "D-", "tokens": 10}
    with running_server(tmp_path) as server:
        register(server, tmp_path, "tokens", "--tokens", "10")
        master = locust_argv(
            base_url(server),
            6,
            6,
            prefix,
            run_time_s=4,
            options=options,
            extra=[
                "--master",
                "--master-bind-host=127.0.0.1",
                f"--master-bind-port={port}",
                "--expect-workers=2",
                "--expect-workers-max-wait=30",
            ],
        )
        worker = locust_worker_argv(port, options=options)
        workers = [
            subprocess.Popen(
                worker, cwd=REPO_ROOT, env=child_env(), stderr=(tmp_path / f"w{n}.log").open("wb")
            )
            for n in range(2)
        ]
        try:
            done = run(master, timeout=60)
        finally:
            for process in workers:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        stations = cli_json(server, "stations", "list")
    assert done.returncode == 0, done.stderr[-3000:]
    stats = read_stats(prefix)
    assert stats[AGGREGATED].failures == 0
    assert stats[("OCPP1.6", "BootNotification")].requests == 6
    booted = [s["id"] for s in stations if s["id"].startswith("D-") and s["last_boot_at"]]
    assert sorted(worker_of(i, "D-") for i in booted) == [0, 0, 0, 1, 1, 1]


def test_v201_users_report_under_their_request_type(tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    port = free_port()
    transport = subprocess.Popen(
        [sys.executable, "-m", "loadtest.bench_transport", "--port", str(port)],
        cwd=REPO_ROOT,
        env=child_env(),
    )
    try:
        argv = locust_argv(
            f"ws://127.0.0.1:{port}/ocpp", 2, 2, prefix, run_time_s=2, options={"version": "2.0.1"}
        )
        run(argv)
    finally:
        transport.terminate()
        transport.wait(10)
    stats = read_stats(prefix)
    # The transport limit answers {} (not a valid 2.0.1 boot answer): reported, typed 2.0.1.
    boot = stats[("OCPP2.0.1", "BootNotification")]
    assert boot.requests >= 2 and boot.failures == boot.requests
    assert {t for t, _ in stats} == {"OCPP2.0.1", "WS", ""}


def test_capacity_quick_run_writes_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = [sys.executable, "-m", "loadtest.capacity", "--steps", "5,10", "--stress-steps", "5"]
    argv += ["--duration", "3", "--settle", "1", "--stress-settle", "1"]
    argv += ["--tokens", "20", "--out", str(out)]
    argv += ["--heartbeat-interval", "1", "--meter-interval", "0.5"]
    argv += ["--sessions-per-day", "86400", "--session-minutes", "0.02"]
    done = run(argv, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (out / "capacity.md").read_text()
    assert "| realistic | 10 |" in table and "| stress | 5 |" in table
    assert "chargers per core at p99 < 100 ms" in table and "knee" in table
    rows = (out / "capacity.csv").read_text().splitlines()
    assert rows[0].startswith("profile,chargers,type,name,requests")
    assert any(r.startswith("realistic,5,OCPP1.6,Heartbeat,") for r in rows)
    assert any(r.startswith("stress,5,,Aggregated,") for r in rows)
    report = orjson.loads((out / "capacity.json").read_bytes())
    assert [s["chargers"] for s in report["steps"]] == [5, 10, 5]
    assert all(s["failures"] == 0 and s["requests"] > 0 for s in report["steps"])
    assert report["knee"] == {"profile": "stress", "chargers": 5}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "capacity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
