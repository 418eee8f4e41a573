"""A fast closed-loop OCPP 1.6J load generator, with its own minimal WebSocket client.

Owns: the virtual charger that cycles through a charging session with exactly one CALL
outstanding, per-CALL latency statistics, running a fleet of chargers, the idle-connections
mode the memory measurement uses, and the command line. The WebSocket client side of RFC 6455
(handshake, framing, ping/pong, close) lives in `loadtest.wsclient`.

It deliberately uses neither trio-websocket nor the `ocpp` package: one core has to push well
over 10,000 CALLs per second, so all of it runs in asyncio protocol callbacks, no coroutine
per message (uvloop is used when it is installed).

    python -m loadtest.loadgen run --url ws://127.0.0.1:9000/ocpp/ --chargers 200 --duration 20
    python -m loadtest.loadgen idle --url ws://127.0.0.1:9000/ocpp/ --connections 5000

`run` prints one JSON object (the `LoadResult`) on stdout. `idle` prints one JSON line per stage
(`primer`, then `idle`) and waits for a line (or end of file) on stdin before the next step;
after the last it closes every connection and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from loadtest.wsclient import WebSocketClient

#: Virtual time per CALL and energy per virtual tick while charging (7.2 kW).
TICK_MS = 1000
WH_PER_TICK = 2
POWER_W = "7200"
#: Each charger's virtual clock starts this far in the past; at one tick per CALL it stays in
#: the past for 2.6 million CALLs per charger.
CLOCK_START_AGE_MS = 30 * 24 * 3600 * 1000

_T = TypeVar("_T")


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Raise this process's open-file limit towards `wanted` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


# -- statistics ------------------------------------------------------------------------------


class Stats:
    """Counters shared by all virtual chargers; latencies only while `measuring`."""

    def __init__(self) -> None:
        self.measuring = False
        self.latencies_ns: list[int] = []
        self.results_total = 0
        self.call_errors: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.connect_failures: Counter[str] = Counter()
        self.authorize_statuses: Counter[str] = Counter()
        self.boots_not_accepted = 0
        self.server_calls = 0
        self.bad_frames = 0

    def result(self, latency_ns: int) -> None:
        self.results_total += 1
        if self.measuring:
            self.latencies_ns.append(latency_ns)

    def error(self, action: str, code: object) -> None:
        self.call_errors[f"{action}:{code}"] += 1


def percentile_ms(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in milliseconds (0 if none)."""
    if not sorted_ns:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_ns)))
    return sorted_ns[min(rank, len(sorted_ns)) - 1] / 1e6


@dataclass
class LoadResult:
    """What one closed-loop run measured; `calls` and latencies cover the measured window."""

    chargers: int
    connected: int
    warmup_s: float
    window_s: float
    calls: int
    msgs_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    call_errors: int
    call_error_kinds: dict[str, int] = field(default_factory=dict)
    disconnects: dict[str, int] = field(default_factory=dict)
    connect_failures: dict[str, int] = field(default_factory=dict)
    authorize_statuses: dict[str, int] = field(default_factory=dict)
    boots_not_accepted: int = 0
    server_calls: int = 0
    bad_frames: int = 0
    results_total: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    stats: Stats, chargers: int, connected: int, warmup: float, window: float
) -> LoadResult:
    ordered = sorted(stats.latencies_ns)
    calls = len(ordered)
    return LoadResult(
        chargers=chargers,
        connected=connected,
        warmup_s=round(warmup, 3),
        window_s=round(window, 3),
        calls=calls,
        msgs_per_s=round(calls / window, 1) if window > 0 else 0.0,
        p50_ms=round(percentile_ms(ordered, 0.50), 3),
        p90_ms=round(percentile_ms(ordered, 0.90), 3),
        p99_ms=round(percentile_ms(ordered, 0.99), 3),
        max_ms=round(ordered[-1] / 1e6, 3) if ordered else 0.0,
        call_errors=sum(stats.call_errors.values()),
        call_error_kinds=dict(stats.call_errors),
        disconnects=dict(stats.disconnects),
        connect_failures=dict(stats.connect_failures),
        authorize_statuses=dict(stats.authorize_statuses),
        boots_not_accepted=stats.boots_not_accepted,
        server_calls=stats.server_calls,
        bad_frames=stats.bad_frames,
        results_total=stats.results_total,
    )


# -- the virtual charger ---------------------------------------------------------------------


def iso_ms(epoch_ms: int) -> str:
    """An OCPP timestamp: ISO 8601 UTC with milliseconds and a Z."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def energy_sample(wh: int, context: str) -> dict[str, str]:
    return {
        "value": str(wh),
        "measurand": "Energy.Active.Import.Register",
        "unit": "Wh",
        "context": context,
    }


def status_payload(status: str, timestamp: str) -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": status, "timestamp": timestamp}


class VirtualCharger:
    """One charge point: boots, then cycles through charging sessions, one CALL at a time.

    Its virtual clock advances `TICK_MS` per CALL (so every StartTransaction timestamp is
    distinct and meter readings imply a plausible 7.2 kW), starting in the past.
    """

    def __init__(self, charge_point_id: str, index: int, tags: int, stats: Stats) -> None:
        loop = asyncio.get_running_loop()
        self.id = charge_point_id
        self.stats = stats
        self.booted: asyncio.Future[bool] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self.closed = False
        self.running = False
        self._ws: WebSocketClient | None = None
        self._index, self._tags, self._sessions = index, max(1, tags), 0
        self._next_id = 0
        self._pending_id = ""
        self._pending_action = ""
        self._sent_ns = 0
        self._clock_ms = int(time.time() * 1000) - CLOCK_START_AGE_MS + index
        self._wh = 1000 * index
        self._tx_id: int | None = None
        self._step = 0
        self._cycle: tuple[Callable[[], tuple[str, dict[str, Any]]], ...] = (
            self._authorize,
            self._preparing,
            self._start_transaction,
            self._meter_values,
            self._meter_values,
            self._meter_values,
            self._stop_transaction,
            self._available,
            self._heartbeat,
        )

    # WebSocket events

    def on_open(self, ws: WebSocketClient) -> None:
        self._ws = ws
        self._call("BootNotification", self._boot())

    def on_message(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.stats.bad_frames += 1
            return
        if not isinstance(frame, list) or len(frame) < 3:
            self.stats.bad_frames += 1
        elif frame[0] == 2:
            self._answer_server_call(frame)
        elif frame[1] != self._pending_id:
            self.stats.bad_frames += 1
        else:
            self._on_reply(frame, now - self._sent_ns)

    def on_close(self, reason: str) -> None:
        self.closed = True
        if self.running or not self.booted.done():
            self.stats.disconnects[reason] += 1
        self.running = False
        _resolve(self.booted, False)
        _resolve(self.drained, None)

    # control

    def start(self) -> None:
        """Begin cycling through sessions (after the boot was answered)."""
        if not self.closed and self._ws is not None:
            self.running = True
            self._send_next()

    def stop(self) -> None:
        """Send no further CALL; `drained` resolves once the outstanding one is answered."""
        self.running = False
        if not self._pending_id:
            _resolve(self.drained, None)

    def close(self) -> None:
        self.running = False
        if self._ws is not None:
            self._ws.close()

    # the CALL loop

    def _call(self, action: str, payload: dict[str, Any]) -> None:
        assert self._ws is not None
        self._next_id += 1
        message_id = str(self._next_id)
        self._pending_id, self._pending_action = message_id, action
        data = orjson.dumps([2, message_id, action, payload])
        self._sent_ns = time.perf_counter_ns()
        self._ws.send_text(data)

    def _on_reply(self, frame: list[Any], latency_ns: int) -> None:
        action = self._pending_action
        self._pending_id = ""
        if frame[0] == 3:
            self.stats.result(latency_ns)
            self._after_result(action, frame[2])
        elif frame[0] == 4:
            self.stats.error(action, frame[2])
            self._after_error(action)
        else:
            self.stats.bad_frames += 1
        if action == "BootNotification":
            return
        if self.running:
            self._send_next()
        else:
            _resolve(self.drained, None)

    def _after_result(self, action: str, payload: Any) -> None:
        if action == "StartTransaction":
            tx_id = payload.get("transactionId") if isinstance(payload, dict) else None
            if isinstance(tx_id, int):
                self._tx_id = tx_id
            else:
                self._skip_transaction()
        elif action == "Authorize":
            info = payload.get("idTagInfo") if isinstance(payload, dict) else None
            self.stats.authorize_statuses[str(info.get("status") if info else None)] += 1
        elif action == "BootNotification":
            accepted = isinstance(payload, dict) and payload.get("status") == "Accepted"
            if not accepted:
                self.stats.boots_not_accepted += 1
            _resolve(self.booted, True)

    def _after_error(self, action: str) -> None:
        if action == "StartTransaction":
            self._skip_transaction()
        elif action == "BootNotification":
            self.stats.boots_not_accepted += 1
            _resolve(self.booted, True)

    def _skip_transaction(self) -> None:
        """No transaction id: go on with the session's end (status Available)."""
        self._tx_id = None
        self._step = self._cycle.index(self._available)

    def _send_next(self) -> None:
        builder = self._cycle[self._step]
        self._step = (self._step + 1) % len(self._cycle)
        action, payload = builder()
        self._call(action, payload)

    def _answer_server_call(self, frame: list[Any]) -> None:
        self.stats.server_calls += 1
        if self._ws is not None:
            reply = [4, frame[1], "NotImplemented", "not supported by the load generator", {}]
            self._ws.send_text(orjson.dumps(reply))

    # message builders

    def _tick(self) -> str:
        self._clock_ms += TICK_MS
        if self._tx_id is not None:
            self._wh += WH_PER_TICK
        return iso_ms(self._clock_ms)

    def _tag(self) -> str:
        return f"TAG{(self._index + self._sessions) % self._tags:04d}"

    def _boot(self) -> dict[str, Any]:
        return {
            "chargePointVendor": "LoadGen",
            "chargePointModel": "LG-1",
            "chargePointSerialNumber": self.id,
            "firmwareVersion": "1.0",
        }

    def _authorize(self) -> tuple[str, dict[str, Any]]:
        self._sessions += 1
        self._tick()
        return "Authorize", {"idTag": self._tag()}

    def _preparing(self) -> tuple[str, dict[str, Any]]:
        return "StatusNotification", status_payload("Preparing", self._tick())

    def _start_transaction(self) -> tuple[str, dict[str, Any]]:
        timestamp = self._tick()
        return "StartTransaction", {
            "connectorId": 1,
            "idTag": self._tag(),
            "meterStart": self._wh,
            "timestamp": timestamp,
        }

    def _meter_values(self) -> tuple[str, dict[str, Any]]:
        timestamp = self._tick()
        samples = [
            energy_sample(self._wh, "Sample.Periodic"),
            {"value": POWER_W, "measurand": "Power.Active.Import", "unit": "W"},
        ]
        meter_value = {"timestamp": timestamp, "sampledValue": samples}
        payload: dict[str, Any] = {"connectorId": 1, "meterValue": [meter_value]}
        if self._tx_id is not None:
            payload["transactionId"] = self._tx_id
        return "MeterValues", payload

    def _stop_transaction(self) -> tuple[str, dict[str, Any]]:
        timestamp = self._tick()
        end = {"timestamp": timestamp, "sampledValue": [energy_sample(self._wh, "Transaction.End")]}
        payload = {
            "transactionId": self._tx_id if self._tx_id is not None else -1,
            "idTag": self._tag(),
            "meterStop": self._wh,
            "timestamp": timestamp,
            "reason": "Local",
            "transactionData": [end],
        }
        self._tx_id = None
        return "StopTransaction", payload

    def _available(self) -> tuple[str, dict[str, Any]]:
        return "StatusNotification", status_payload("Available", self._tick())

    def _heartbeat(self) -> tuple[str, dict[str, Any]]:
        self._tick()
        return "Heartbeat", {}


def _resolve(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)


# -- running a fleet -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the chargers connect: `ws://host:port/prefix/` + charge point id."""

    host: str
    port: int
    path_prefix: str

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"need a ws://HOST:PORT/PATH/ URL, not {url!r}")
        prefix = parts.path if parts.path.endswith("/") else parts.path + "/"
        return cls(parts.hostname, parts.port or 80, prefix)

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class LoadConfig:
    url: str
    chargers: int = 200
    duration: float = 20.0
    warmup: float = 3.0
    prefix: str = "BENCH"
    tags: int = 1000
    connect_concurrency: int = 100
    connect_timeout: float = 15.0
    drain_timeout: float = 5.0


async def connect_charger(target: Target, charger: VirtualCharger, timeout: float) -> bool:
    """Open the charger's connection and wait for its boot to be answered."""
    loop = asyncio.get_running_loop()
    path = target.path_prefix + charger.id
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: WebSocketClient(charger, target.host_header, path), target.host, target.port
            )
            return await charger.booted
    except (OSError, TimeoutError) as exc:
        charger.stats.connect_failures[type(exc).__name__] += 1
        charger.close()
        return False


async def connect_all(
    target: Target, chargers: list[VirtualCharger], concurrency: int, timeout: float
) -> list[VirtualCharger]:
    """Connect and boot every charger, at most `concurrency` handshakes at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(charger: VirtualCharger) -> bool:
        async with gate:
            return await connect_charger(target, charger, timeout)

    booted = await asyncio.gather(*(one(c) for c in chargers))
    return [c for c, ok in zip(chargers, booted, strict=True) if ok and not c.closed]


async def close_all(chargers: list[VirtualCharger]) -> None:
    for charger in chargers:
        charger.close()
    await asyncio.sleep(0.2)  # let the close frames go out


def make_chargers(prefix: str, count: int, tags: int, stats: Stats) -> list[VirtualCharger]:
    return [VirtualCharger(f"{prefix}{i:05d}", i, tags, stats) for i in range(count)]


async def run_load(config: LoadConfig) -> LoadResult:
    """Connect and boot `config.chargers`, cycle them through sessions, measure a window."""
    target = Target.from_url(config.url)
    stats = Stats()
    chargers = make_chargers(config.prefix, config.chargers, config.tags, stats)
    try:
        live = await connect_all(
            target, chargers, config.connect_concurrency, config.connect_timeout
        )
        for charger in live:
            charger.start()
        await asyncio.sleep(config.warmup)
        stats.measuring = True
        started = time.perf_counter()
        await asyncio.sleep(config.duration)
        stats.measuring = False
        window = time.perf_counter() - started
        for charger in live:
            charger.stop()
        if live:
            await asyncio.wait([c.drained for c in live], timeout=config.drain_timeout)
    finally:
        await close_all(chargers)
    return summarize(stats, config.chargers, len(live), config.warmup, window)


@dataclass(frozen=True)
class IdleConfig:
    url: str
    connections: int = 5000
    primer: int = 20
    prefix: str = "IDLE"
    connect_concurrency: int = 100
    connect_timeout: float = 30.0
    hold_timeout: float = 600.0


def idle_stage(stage: str, chargers: list[VirtualCharger], stats: Stats) -> dict[str, Any]:
    failed = sum(stats.connect_failures.values()) + sum(stats.disconnects.values())
    return {
        "stage": stage,
        "open": sum(1 for c in chargers if c.booted.done() and not c.closed),
        "failed": failed,
        "boots_not_accepted": stats.boots_not_accepted,
    }


async def hold_idle(
    config: IdleConfig,
    report: Callable[[dict[str, Any]], None],
    proceed: Callable[[], Awaitable[object]],
) -> None:
    """Open `primer` idle connections, report, await `proceed`; open `connections` more,
    report, await `proceed` again; then close them all. Each connection boots once."""
    target = Target.from_url(config.url)
    stats = Stats()
    chargers = make_chargers(config.prefix, config.primer + config.connections, 1, stats)
    stages = (("primer", chargers[: config.primer]), ("idle", chargers[config.primer :]))
    try:
        for stage, batch in stages:
            await connect_all(target, batch, config.connect_concurrency, config.connect_timeout)
            report(idle_stage(stage, chargers, stats))
            await asyncio.wait_for(proceed(), config.hold_timeout)
    finally:
        await close_all(chargers)


# -- command line ----------------------------------------------------------------------------


def run_event_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """Run `main` on uvloop if it is installed, else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_load_blocking(config: LoadConfig) -> LoadResult:
    raise_nofile_limit()
    return run_event_loop(run_load(config))


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    sys.stdout.flush()


async def _read_stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Fast closed-loop OCPP 1.6J load generator.")
    modes = parser.add_subparsers(dest="mode", required=True)
    run = modes.add_parser("run", help="closed-loop charging sessions; prints a JSON result")
    run.add_argument("--url", required=True, help="ws://HOST:PORT/ocpp/ (id is appended)")
    run.add_argument("--chargers", type=int, default=200)
    run.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    run.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    run.add_argument("--prefix", default="BENCH")
    run.add_argument("--tags", type=int, default=1000, help="id tag pool size (TAG0000...)")
    idle = modes.add_parser("idle", help="hold idle booted connections (memory measurement)")
    idle.add_argument("--url", required=True)
    idle.add_argument("--connections", type=int, default=5000)
    idle.add_argument("--primer", type=int, default=20, help="connections opened first")
    idle.add_argument("--prefix", default="IDLE")
    idle.add_argument("--hold-timeout", type=float, default=600.0)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    raise_nofile_limit()
    if args.mode == "run":
        config = LoadConfig(
            url=args.url,
            chargers=args.chargers,
            duration=args.duration,
            warmup=args.warmup,
            prefix=args.prefix,
            tags=args.tags,
        )
        _emit(run_event_loop(run_load(config)).to_dict())
    else:
        idle_config = IdleConfig(
            url=args.url,
            connections=args.connections,
            primer=args.primer,
            prefix=args.prefix,
            hold_timeout=args.hold_timeout,
        )
        run_event_loop(hold_idle(idle_config, _emit, _read_stdin_line))


if __name__ == "__main__":
    main()
