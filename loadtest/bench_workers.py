"""`csms serve --workers 2` against `--workers 1` on PostgreSQL, side by side in one run.

Owns: a fresh PostgreSQL database per server run (created and dropped here), starting the
server with N workers, the closed-loop load (`loadtest.loadgen`, in a process of its own,
the same load for both), and the report: msgs/s of each and the ratio. Runs alternate
(1, 2, 1, 2, ...) so a drift of the machine does not favour one side.

    python -m loadtest.bench_workers --database-url postgresql://USER@HOST:PORT/DB
                                     [--chargers 200] [--duration 10] [--rounds 2]

The URL names a maintenance database (default: `CSMS_BENCH_POSTGRES_URL`, else
`CSMS_TEST_POSTGRES_URL`); the runs' databases are created beside it. On a machine with few
cores the load generator shares them with the workers, which caps the ratio below N.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import orjson

from csms.storage.postgres import scratch_database
from loadtest.bench import (
    HOST,
    BenchError,
    child_env,
    csms_env,
    free_port,
    loadgen_argv,
    progress,
    run_in_scratch,
    spawn,
    stop_process,
    tail,
)

SERVER_START_TIMEOUT_S = 60.0


def fresh_database(maintenance_url: str) -> AbstractContextManager[str]:
    """A new database beside the maintenance one, dropped on exit."""
    return scratch_database(maintenance_url, "csms_bench")


@contextmanager
def running_workers(workers: int, database_url: str, workdir: Path) -> Iterator[int]:
    """`csms serve --workers N` on a free port until exit; yields the OCPP port."""
    port = free_port()
    env = child_env(csms_env(workdir, port) | {"CSMS_DATABASE_URL": database_url})
    log = workdir / f"server-{workers}.log"
    argv = [sys.executable, "-m", "csms", "serve", "--workers", str(workers)]
    with log.open("ab") as log_file:
        process = spawn(argv, None, env, workdir, stdout=log_file, stderr=log_file)
    try:
        _wait_listening(process, port, workers, log)
        yield port
    finally:
        stop_process(process, grace=20.0)


def _wait_listening(process: subprocess.Popen[bytes], port: int, workers: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"--workers {workers} exited ({process.returncode}):\n{tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                # Every worker must be up, not just the first one to bind.
                time.sleep(2.0)
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"--workers {workers} did not listen within {SERVER_START_TIMEOUT_S:.0f} s")


def measure(workers: int, args: argparse.Namespace, workdir: Path, round_no: int) -> float:
    """One load run against a fresh `--workers N` server: its msgs/s."""
    with fresh_database(args.database_url) as url, running_workers(workers, url, workdir) as port:
        argv = loadgen_argv(
            "run",
            f"ws://{HOST}:{port}/ocpp/",
            "--chargers", args.chargers,
            "--duration", args.duration,
            "--warmup", args.warmup,
            "--prefix", f"W{workers}R{round_no}",
        )  # fmt: skip
        log = workdir / "loadgen.log"
        with log.open("ab") as log_file:
            process = spawn(argv, None, child_env(), workdir, stderr=log_file)
        try:
            out, _ = process.communicate(timeout=args.warmup + args.duration + 120)
        except subprocess.TimeoutExpired:
            raise BenchError("the load generator did not finish in time") from None
        finally:
            stop_process(process)
        lines = out.decode(errors="replace").strip().splitlines()
        if process.returncode != 0 or not lines:
            raise BenchError(f"load generator failed ({process.returncode}):\n{tail(log)}")
        result = orjson.loads(lines[-1])
        if result["call_errors"]:
            progress(f"  {result['call_errors']} CALL errors: {result['call_error_kinds']}")
        return float(result["msgs_per_s"])


def run(args: argparse.Namespace, workdir: Path) -> dict[int, list[float]]:
    rates: dict[int, list[float]] = {1: [], 2: []}
    for round_no in range(args.rounds):
        for workers in (1, 2):
            progress(f"round {round_no + 1}/{args.rounds}: --workers {workers}")
            rates[workers].append(measure(workers, args, workdir, round_no))
            progress(f"  {rates[workers][-1]:,.0f} msgs/s")
    return rates


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    default_url = os.environ.get("CSMS_BENCH_POSTGRES_URL") or os.environ.get(
        "CSMS_TEST_POSTGRES_URL"
    )
    parser.add_argument("--database-url", default=default_url, help="a maintenance database")
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if not args.database_url:
        sys.exit("bench_workers: give --database-url postgresql://... (or CSMS_BENCH_POSTGRES_URL)")
    rates = run_in_scratch("bench_workers", lambda tmp: run(args, tmp))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    cores = os.cpu_count() or 1
    print(f"--workers 1: {one:,.0f} msgs/s (median of {len(rates[1])})")
    print(f"--workers 2: {two:,.0f} msgs/s (median of {len(rates[2])})")
    print(f"ratio 2/1:   {two / one:.2f}")
    print(
        f"{cores} cores: the load generator, PostgreSQL and the workers share them"
        + (": the ratio is a lower bound of what more cores give" if cores <= 2 else "")
    )


if __name__ == "__main__":
    main()
