"""The reconnect storm: N simulated chargers connected, the CSMS SIGKILLed and restarted, all
N reconnecting at once.

It registers N stations in a fresh SQLite ledger, starts `csms serve`, connects N wire-mode
`VirtualChargePoint`s (no drivers: connections, boots, heartbeats) and waits until all are
booted; that first connection of all N at once is the reference. Then it SIGKILLs the server
and starts it again on the same database and port. Every charger sees its connection end at
the same moment and, as the simulator's chargers do, waits its fixed reconnect delay (10 s
by default, no backoff and no jitter) before trying again, again after every failed attempt:
they all arrive together, the storm. Measured: seconds from the restart (the server
listening again) until all N have a BootNotification accepted again, and the server's peak
RSS over the storm, as ratios to the first connection and to the RSS before the kill;
`beyond_delay_s` is the storm's own service time: all back, less the delays slept.

    python -m loadtest.reconnect_storm [--chargers 1000,5000] [--json PATH]

Everything listens on 127.0.0.1; the server is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import orjson
import trio

from csms.logs import configure_logging
from csms.storage.sqlite import SqliteStore
from loadtest.bench import BenchError
from loadtest.csms_process import CsmsProcess
from loadtest.loadgen import raise_nofile_limit
from simulator.chargepoint import Timing, VirtualChargePoint
from simulator.timers import Clockwork
from simulator.transport import url_connector

#: Upper bound for N chargers to come back, in seconds.
DEADLINE_S = 300.0
RSS_SAMPLE_S = 0.05


@dataclass
class StormFigures:
    chargers: int
    #: The first connection of all N (fresh server): seconds until all booted.
    first_connect_s: float
    #: From the restarted server listening until all N booted again.
    reconnect_s: float
    #: From the SIGKILL until all N booted again (includes the server's start).
    kill_to_all_back_s: float
    server_start_s: float
    rss_before_kill_mb: float
    peak_rss_storm_mb: float
    reconnect_delay_s: float

    @property
    def beyond_delay_s(self) -> float:
        """The storm's service time: all back, less the reconnect delays the chargers slept
        (they retry every delay from the kill until the server is up again)."""
        waits = max(1, math.ceil(self.server_start_s / self.reconnect_delay_s))
        return max(0.0, self.kill_to_all_back_s - waits * self.reconnect_delay_s)

    @property
    def reconnect_ratio(self) -> float:
        return self.reconnect_s / self.first_connect_s if self.first_connect_s else 0.0

    @property
    def rss_ratio(self) -> float:
        return self.peak_rss_storm_mb / self.rss_before_kill_mb if self.rss_before_kill_mb else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            **asdict(self),
            "beyond_delay_s": round(self.beyond_delay_s, 2),
            "reconnect_ratio": round(self.reconnect_ratio, 2),
            "rss_ratio": round(self.rss_ratio, 2),
        }


async def reconnect_storm(
    chargers: int, workdir: Path, *, reconnect_delay_s: float = 10.0
) -> StormFigures:
    """One storm of `chargers` chargers (run under trio's real clock)."""
    ids = [f"STORM-{n:05d}" for n in range(chargers)]
    db_path = workdir / "ledger.db"
    store = SqliteStore(str(db_path))
    try:
        store.add_stations([(station_id, 0) for station_id in ids])
    finally:
        store.close()
    server = CsmsProcess(workdir, db_path, {"CSMS_HEARTBEAT_INTERVAL": "300"})
    server.launch()
    try:
        await trio.to_thread.run_sync(server.wait_listening)
        return await _storm(server, ids, reconnect_delay_s)
    finally:
        server.stop()


async def _storm(server: CsmsProcess, ids: list[str], reconnect_delay_s: float) -> StormFigures:
    clockwork = Clockwork()
    timing = Timing(reconnect_delay_s=reconnect_delay_s)
    fleet = [
        VirtualChargePoint(
            station_id,
            url_connector(server.url, station_id),
            record_messages=False,
            clockwork=clockwork,
            timing=timing,
        )
        for station_id in ids
    ]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clockwork.run)
        started = time.perf_counter()
        for cp in fleet:
            await nursery.start(cp.run)
        await _all_booted(fleet, [0] * len(fleet), server)
        first_connect_s = time.perf_counter() - started
        await trio.sleep(1.0)  # settle: status notifications and first heartbeats
        rss_before = server.rss_bytes()
        boots = [cp.boots for cp in fleet]
        killed = time.perf_counter()
        server.kill()
        server.launch()
        peak = [0]
        async with trio.open_nursery() as watch:
            watch.start_soon(_track_rss, server, peak)
            await trio.to_thread.run_sync(server.wait_listening)
            listening = time.perf_counter()
            await _all_booted(fleet, boots, server)
            back = time.perf_counter()
            watch.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    mb = 1024 * 1024
    return StormFigures(
        chargers=len(fleet),
        first_connect_s=round(first_connect_s, 2),
        reconnect_s=round(back - listening, 2),
        kill_to_all_back_s=round(back - killed, 2),
        server_start_s=round(listening - killed, 2),
        rss_before_kill_mb=round(rss_before / mb, 1),
        peak_rss_storm_mb=round(peak[0] / mb, 1),
        reconnect_delay_s=reconnect_delay_s,
    )


async def _all_booted(
    fleet: list[VirtualChargePoint], boots: list[int], server: CsmsProcess
) -> None:
    """Until every charger has had a boot accepted since `boots` was taken (bounded)."""
    with trio.fail_after(DEADLINE_S):
        while True:
            behind = sum(1 for cp, before in zip(fleet, boots, strict=True) if cp.boots <= before)
            if not behind:
                return
            if server.process is not None and server.process.poll() is not None:
                raise BenchError(f"the CSMS died during the storm:\n{server.log_text()}")
            await trio.sleep(0.05)


async def _track_rss(server: CsmsProcess, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], server.rss_bytes())
        await trio.sleep(RSS_SAMPLE_S)


def run_sync(chargers: int, reconnect_delay_s: float = 10.0) -> StormFigures:
    with tempfile.TemporaryDirectory(prefix="reconnect-storm-") as workdir:
        figures: StormFigures = trio.run(
            partial(reconnect_storm, chargers, Path(workdir), reconnect_delay_s=reconnect_delay_s)
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.reconnect_storm", description=__doc__)
    parser.add_argument("--chargers", default="1000,5000", help="comma-separated fleet sizes")
    parser.add_argument("--reconnect-delay", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    configure_logging("error")
    raise_nofile_limit()
    results = []
    for size in (int(n) for n in args.chargers.split(",")):
        figures = run_sync(size, args.reconnect_delay)
        results.append(figures.as_dict())
        print(" ".join(f"{k}={v}" for k, v in figures.as_dict().items()), flush=True)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
