"""Benchmark: durable ledger rows per second on SQLite against PostgreSQL, in one run.

    python -m loadtest.bench_storage [--events 6000] [--batch 50] [--postgres-url URL]
                                     [--latency-ms 0]

Both backends get the same domain events through the real store as the ledger actor drives it
(`run_batch`: one transaction per batch, committed durably) and the real ledger rules: per
station a boot, a start, meter values and a stop. The rows written (transactions, meter
samples, events, statuses, ...) are counted afterwards in each database; the report gives both
rates and their ratio. PostgreSQL runs in a fresh database on the server `--postgres-url`
names (default: `CSMS_BENCH_POSTGRES_URL`, else `CSMS_TEST_POSTGRES_URL`), dropped afterwards;
without one, only SQLite is measured.

On loopback the PostgreSQL run is bound by the CPU of client and server, not by round trips;
`--latency-ms` puts a relay in front of the server that delays every chunk by half the given
round trip each way, as a network between the CSMS and its database would.
"""

from __future__ import annotations

import argparse
import functools
import os
import queue
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from csms.domain.events import (
    BootReported,
    DomainEvent,
    MeterSample,
    MeterValuesReported,
    TransactionStarted,
    TransactionStopped,
)
from csms.domain.ledger import LedgerRules, UnknownStationPolicy
from csms.domain.metering import ENERGY_REGISTER
from csms.domain.replies import StartDecision
from csms.storage.sqlite import SqliteStore

RULES = LedgerRules(unknown_stations=UnknownStationPolicy.ACCEPT)
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
METER_EVENTS = 4  # per session, between its start and its stop
TABLES = ("stations", "transactions", "meter_samples", "events", "status_history", "connectors")


def sample(wh: float, at: datetime) -> MeterSample:
    return MeterSample(
        timestamp=at,
        measurand=ENERGY_REGISTER,
        value=str(wh),
        numeric=wh,
        unit="Wh",
        phase=None,
        context="Sample.Periodic",
        location=None,
        format=None,
        wh=wh,
    )


def drive(store: SqliteStore, events: int, batch: int) -> None:
    """Sessions of `METER_EVENTS + 3` events each, interleaved over stations in batches."""
    per_session = METER_EVENTS + 3
    stations = [f"BENCH-{n:05d}" for n in range(max(1, events // per_session))]

    def run(pending: list[DomainEvent]) -> list[object]:
        outcomes = []
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            done = store.run_batch([functools.partial(RULES.apply, event=e) for e in chunk])
            for outcome in done:
                if outcome.error is not None:
                    raise outcome.error
                outcomes.append(outcome.value)
        return outcomes

    run(
        [
            BootReported(s, "Bench", "B1", None, None, None, None, None, None, None, T0)
            for s in stations
        ]
    )
    started = run(
        [TransactionStarted(s, 1, "BENCH-TAG", 1000, T0, None, received_at=T0) for s in stations]
    )
    ids = [d.transaction_id for d in started if isinstance(d, StartDecision)]
    for step in range(1, METER_EVENTS + 1):
        at = T0 + timedelta(minutes=step)
        run(
            [
                MeterValuesReported(s, 1, tid, (sample(1000.0 + 250 * step, at),), received_at=at)
                for s, tid in zip(stations, ids, strict=True)
            ]
        )
    end = T0 + timedelta(hours=1)
    run(
        [
            TransactionStopped(s, tid, "BENCH-TAG", 3000, end, "Local", (), received_at=end)
            for s, tid in zip(stations, ids, strict=True)
        ]
    )


def measure(target: str, events: int, batch: int) -> tuple[int, float]:
    """Rows written and seconds taken on the store at `target`."""
    store = SqliteStore(target)
    try:
        began = time.perf_counter()
        drive(store, events, batch)
        seconds = time.perf_counter() - began
        written = sum(store.count(table) for table in TABLES)
    finally:
        store.close()
    return written, seconds


def fresh_postgres(admin_url: str) -> AbstractContextManager[str]:
    from csms.storage.postgres import scratch_database

    return scratch_database(admin_url, "csms_bench")


@contextmanager
def delayed(url: str, round_trip_s: float) -> Iterator[str]:
    """`url` through a local relay that delays each chunk by half of `round_trip_s` each way."""
    if round_trip_s <= 0:
        yield url
        return
    parts = urlsplit(url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
    listener = socket.create_server(("127.0.0.1", 0))
    relay_port = listener.getsockname()[1]

    def pump(source: socket.socket, sink: socket.socket) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def send() -> None:
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    sink.close()
                    return
                sink.sendall(data)

        threading.Thread(target=send, daemon=True).start()
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + round_trip_s / 2, data))
            if not data:
                return

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            server = socket.create_connection(upstream)
            for end in (client, server):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pump, args=(client, server), daemon=True).start()
            threading.Thread(target=pump, args=(server, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    netloc = parts.netloc.rsplit("@", 1)
    address = f"127.0.0.1:{relay_port}"
    try:
        yield urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{address}" if len(netloc) == 2 else address)
        )
    finally:
        listener.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000, help="domain events per backend")
    parser.add_argument("--batch", type=int, default=50, help="events per group commit")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CSMS_BENCH_POSTGRES_URL")
        or os.environ.get("CSMS_TEST_POSTGRES_URL"),
        help="a PostgreSQL server to create a scratch database on",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="a network round trip to emulate between the store and PostgreSQL",
    )
    args = parser.parse_args(argv)
    if args.events < METER_EVENTS + 3 or args.batch < 1:
        parser.error(f"--events must be at least {METER_EVENTS + 3} and --batch at least 1")
    print(f"{args.events} events per backend, {args.batch} per durable batch")
    with tempfile.TemporaryDirectory() as scratch:
        rows, seconds = measure(str(Path(scratch) / "bench.db"), args.events, args.batch)
    sqlite_rate = rows / seconds
    print(f"sqlite      {rows:>8} rows in {seconds:6.2f} s  {sqlite_rate:>10.0f} rows/s")
    if not args.postgres_url:
        print("postgresql  skipped: give --postgres-url (or set CSMS_BENCH_POSTGRES_URL)")
        return 0
    with fresh_postgres(args.postgres_url) as url, delayed(url, args.latency_ms / 1000) as far:
        rows, seconds = measure(far, args.events, args.batch)
    postgres_rate = rows / seconds
    where = f" ({args.latency_ms:g} ms away)" if args.latency_ms > 0 else ""
    print(f"postgresql  {rows:>8} rows in {seconds:6.2f} s  {postgres_rate:>10.0f} rows/s{where}")
    print(f"ratio postgresql/sqlite: {postgres_rate / sqlite_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
