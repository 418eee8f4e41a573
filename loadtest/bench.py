"""Side-by-side benchmark, in one run: our CSMS, the `ocpp` quick-start reference, and the
transport limit (`loadtest.bench_transport`: WebSocket and OCPP-J framing, an empty CALLRESULT
to every CALL).

Owns: starting each server as a subprocess pinned to one CPU, running the load generator
(`loadtest.loadgen`, the same load for every server) pinned to another, the idle-connections
memory measurement (the server's RSS before and after opening N idle, booted connections), and
the command line. The report (the table, the ratios ours/reference and ours/transport, the
targets and whether they are met, and the JSON document) lives in `loadtest.bench_report`.

    python -m loadtest.bench [--chargers 200] [--duration 20] [--idle-connections 5000]
                             [--skip-memory] [--transport-stack trio-websocket|wsproto]
                             [--json PATH]

Every server process gets a fresh database, listens on loopback only, and is killed at the end
whatever happens. `--ours reference` benchmarks the reference against itself (a dry run of the
bench without our server).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson
import psutil

from loadtest.bench_report import print_report, report
from loadtest.loadgen import raise_nofile_limit

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 60.0
SETTLE_S = 2.0
_PR_SET_PDEATHSIG = 1


_T = TypeVar("_T")


class BenchError(Exception):
    """A server or the load generator did not do its part; the message says which and why."""


def progress(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# -- processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpus:
    """The CPUs the server and the load generator are pinned to (None: not pinned)."""

    server: int | None
    load: int | None

    @classmethod
    def pick(cls) -> Cpus:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            return cls(None, None)
        return cls(available[0], available[1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this (child) process when the bench dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the finally blocks still apply
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_setup(cpu: int | None) -> Callable[[], None]:
    """What a child does before exec: pin itself to `cpu`, raise its open-file limit, and
    arrange to die with the bench."""

    def setup() -> None:
        die_with_parent()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        raise_nofile_limit()

    return setup


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def spawn(
    argv: list[str],
    cpu: int | None,
    env: dict[str, str],
    cwd: Path,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    stderr: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        preexec_fn=child_setup(cpu),
        start_new_session=True,  # a Ctrl-C on the bench reaches the children only through us
    )


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaps the process."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # a broken pipe has nothing left to flush
                stream.close()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class ServerSpec:
    """How to start one of the servers."""

    label: str
    kind: str  # "csms", "reference" or "transport"
    #: The transport server's WebSocket stack (see `loadtest.bench_transport`).
    stack: str = "trio-websocket"

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        if self.kind == "reference":
            argv = [sys.executable, "-m", "loadtest.bench_reference", "--host", HOST]
            return [*argv, "--port", str(port)], child_env()
        if self.kind == "transport":
            argv = [sys.executable, "-m", "loadtest.bench_transport", "--host", HOST]
            return [*argv, "--port", str(port), "--stack", self.stack], child_env()
        return [sys.executable, "-m", "csms", "serve"], child_env(csms_env(workdir, port))


def csms_env(workdir: Path, port: int) -> dict[str, str]:
    return {
        "CSMS_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "CSMS_OCPP_HOST": HOST,
        "CSMS_OCPP_PORT": str(port),
        "CSMS_API_HOST": HOST,
        "CSMS_API_PORT": str(free_port()),
        "CSMS_UNKNOWN_STATIONS": "accept",
        "CSMS_LOG_LEVEL": "warning",
        # Closed-loop load drives one connection far past any real charger's rate; the
        # limiter still runs on every message, it just never refuses one here.
        "CSMS_MAX_MESSAGES_PER_SECOND": "1000000",
        "CSMS_MESSAGE_BURST": "1000000",
    }


@dataclass
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ocpp/"

    def rss_kb(self) -> float:
        return float(psutil.Process(self.process.pid).memory_info().rss) / 1024.0

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchError(
                f"{self.spec.label} server exited with code {code}; log:\n{tail(self.log)}"
            )


def wait_for_port(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with socket.create_connection((HOST, server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{server.spec.label} server did not listen within {timeout:.0f} s")


@contextmanager
def running_server(
    spec: ServerSpec, workdir: Path, cpu: int | None, tokens: int = 0
) -> Iterator[RunningServer]:
    """Start the server in `workdir`, wait until it listens, and always kill it afterwards.

    Our server first gets `tokens` id tags (TAG0000...) registered as Accepted.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv, env = spec.command(port, workdir)
    if tokens and spec.kind == "csms":
        import_tokens(env, workdir, tokens)
    log = workdir / "server.log"
    with log.open("wb") as log_file:
        process = spawn(argv, cpu, env, workdir, stdout=log_file, stderr=log_file)
    server = RunningServer(spec, process, port, workdir, log)
    try:
        wait_for_port(server, SERVER_START_TIMEOUT_S)
        yield server
    finally:
        stop_process(process)


def import_tokens(env: dict[str, str], workdir: Path, count: int) -> None:
    """Register the load generator's tag pool as Accepted; go on without it if that fails."""
    csv_path = workdir / "tokens.csv"
    rows = ["id_tag,status", *(f"TAG{k:04d},Accepted" for k in range(count))]
    csv_path.write_text("\n".join(rows) + "\n")
    argv = [sys.executable, "-m", "csms", "tokens", "import", str(csv_path)]
    try:
        done = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        progress("token import timed out; unknown tags will read Invalid")
        return
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        progress(f"token import skipped ({reason[0]}); unknown tags will read Invalid")


# -- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    chargers: int = 200
    #: Measured seconds per server, split evenly over the rounds.
    duration: float = 20.0
    #: Unmeasured seconds at the start of every round's load run.
    warmup: float = 2.0
    rounds: int = 4
    tags: int = 1000
    idle_connections: int = 5000
    idle_primer: int = 20
    skip_memory: bool = False
    ours: str = "csms"
    transport_stack: str = "trio-websocket"

    @property
    def segment(self) -> float:
        return self.duration / self.rounds


@dataclass
class ServerResult:
    """One server's figures: `load` aggregates its `rounds`; `memory` is the idle run."""

    label: str
    kind: str
    rounds: list[dict[str, Any]]
    load: dict[str, Any] = field(init=False)
    memory: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.load = aggregate(self.rounds)

    @property
    def msgs_per_s(self) -> float:
        return float(self.load["msgs_per_s"])

    @property
    def p99_ms(self) -> float:
        return float(self.load["p99_ms"])

    @property
    def kb_per_connection(self) -> float | None:
        return None if self.memory is None else float(self.memory["kb_per_connection"])


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure per measure: medians over the rounds for rates and percentiles (robust to
    one noisy round), sums for counts."""

    def median_of(key: str) -> float:
        return round(statistics.median(float(r[key]) for r in rounds), 3)

    def merged(key: str) -> dict[str, int]:
        total: Counter[str] = Counter()
        for r in rounds:
            total.update(r[key])
        return dict(total)

    return {
        "rounds": len(rounds),
        "chargers": rounds[0]["chargers"],
        "connected": min(int(r["connected"]) for r in rounds),
        "window_s": round(sum(float(r["window_s"]) for r in rounds), 3),
        "calls": sum(int(r["calls"]) for r in rounds),
        "msgs_per_s": median_of("msgs_per_s"),
        "p50_ms": median_of("p50_ms"),
        "p99_ms": median_of("p99_ms"),
        "max_ms": max(float(r["max_ms"]) for r in rounds),
        "call_errors": sum(int(r["call_errors"]) for r in rounds),
        "call_error_kinds": merged("call_error_kinds"),
        "disconnects": merged("disconnects"),
        "connect_failures": merged("connect_failures"),
        "authorize_statuses": merged("authorize_statuses"),
        "boots_not_accepted": sum(int(r["boots_not_accepted"]) for r in rounds),
        "bad_frames": sum(int(r["bad_frames"]) for r in rounds),
        "server_calls": sum(int(r["server_calls"]) for r in rounds),
    }


def loadgen_argv(mode: str, url: str, *options: object) -> list[str]:
    return [sys.executable, "-m", "loadtest.loadgen", mode, "--url", url, *map(str, options)]


def measure_load(
    server: RunningServer, config: BenchConfig, cpus: Cpus, prefix: str
) -> dict[str, Any]:
    """One closed-loop load run (one round's segment) against `server`; its JSON result.

    Every round uses fresh charger ids (`prefix`), so no round replays another's messages.
    """
    argv = loadgen_argv(
        "run",
        server.url,
        "--chargers", config.chargers,
        "--duration", config.segment,
        "--warmup", config.warmup,
        "--tags", config.tags,
        "--prefix", prefix,
    )  # fmt: skip
    budget = config.warmup + config.segment + 120.0
    log = server.workdir / "loadgen.log"
    with log.open("ab") as log_file:
        process = spawn(argv, cpus.load, child_env(), server.workdir, stderr=log_file)
    try:
        out, _ = process.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        raise BenchError(f"load generator did not finish within {budget:.0f} s") from None
    finally:
        stop_process(process)
    server.check_alive()
    lines = out.decode(errors="replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        raise BenchError(f"load generator failed ({process.returncode}):\n{tail(log)}")
    result: dict[str, Any] = orjson.loads(lines[-1])
    return result


def read_stage(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The next JSON line the idle load generator prints, within `timeout` seconds."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise BenchError(f"idle load generator silent for {timeout:.0f} s")
    line = process.stdout.readline()
    if not line:
        raise BenchError(f"idle load generator ended early (code {process.wait(5)})")
    stage: dict[str, Any] = orjson.loads(line)
    return stage


def proceed(process: subprocess.Popen[bytes]) -> None:
    """Tell the idle load generator to go on to its next stage."""
    assert process.stdin is not None
    try:
        process.stdin.write(b"go\n")
        process.stdin.flush()
    except BrokenPipeError:
        raise BenchError(f"idle load generator ended early (code {process.wait(5)})") from None


def finish_idle(process: subprocess.Popen[bytes]) -> None:
    """End of input: the idle load generator closes its connections and exits."""
    if process.stdin is not None and process.poll() is None:
        try:
            process.stdin.close()
            process.wait(15)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            pass
    stop_process(process)


def measure_memory(server: RunningServer, config: BenchConfig, cpus: Cpus) -> dict[str, Any]:
    """Server RSS with `idle_primer` idle connections open, then with `idle_connections` more;
    the difference over `idle_connections` is the memory one idle, booted connection costs."""
    argv = loadgen_argv(
        "idle",
        server.url,
        "--connections", config.idle_connections,
        "--primer", config.idle_primer,
    )  # fmt: skip
    log = server.workdir / "loadgen-idle.log"
    with log.open("wb") as log_file:
        process = spawn(
            argv, cpus.load, child_env(), server.workdir, subprocess.PIPE, stderr=log_file
        )
    try:
        primer = read_stage(process, 120.0)
        time.sleep(SETTLE_S)
        before = server.rss_kb()
        proceed(process)
        idle = read_stage(process, 120.0 + config.idle_connections / 20.0)
        time.sleep(SETTLE_S)
        server.check_alive()
        after = server.rss_kb()
    finally:
        finish_idle(process)
    opened = int(idle["open"]) - int(primer["open"])
    return {
        "connections_requested": config.idle_connections,
        "connections_open": opened,
        "failed": idle["failed"],
        "boots_not_accepted": idle["boots_not_accepted"],
        "rss_before_kb": round(before),
        "rss_after_kb": round(after),
        "kb_per_connection": round((after - before) / opened, 2) if opened > 0 else 0.0,
    }


def measure_throughput(
    specs: list[ServerSpec], config: BenchConfig, cpus: Cpus, workdir: Path
) -> dict[str, list[dict[str, Any]]]:
    """All servers up at once (the idle ones sleep), loaded in turns: round r runs one segment
    per server, in alternating order (A B C, C B A, ...), so slow spells of a noisy machine
    fall on all. Each server has its own fresh database."""
    rounds: dict[str, list[dict[str, Any]]] = {spec.label: [] for spec in specs}
    with ExitStack() as stack:
        servers = []
        for spec in specs:
            progress(f"{spec.label}: starting server ({spec.kind}) for the load runs")
            where = workdir / spec.label / "load"
            servers.append(
                stack.enter_context(running_server(spec, where, cpus.server, config.tags))
            )
        for r in range(config.rounds):
            for server in servers if r % 2 == 0 else servers[::-1]:
                label = server.spec.label
                result = measure_load(server, config, cpus, prefix=f"R{r}B")
                rounds[label].append(result)
                progress(
                    f"round {r + 1}/{config.rounds} {label}: {result['msgs_per_s']:,.0f} msgs/s, "
                    f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
                )
    return rounds


def memory_run(spec: ServerSpec, config: BenchConfig, cpus: Cpus, workdir: Path) -> dict[str, Any]:
    """The idle-connections measurement on a fresh server process."""
    progress(f"{spec.label}: starting server for {config.idle_connections} idle connections")
    with running_server(spec, workdir / spec.label / "memory", cpus.server) as server:
        memory = measure_memory(server, config, cpus)
    progress(f"{spec.label}: {memory['kb_per_connection']:.1f} KB per idle connection")
    return memory


# -- command line ----------------------------------------------------------------------------


def bench_specs(config: BenchConfig) -> list[ServerSpec]:
    """Ours, the reference and the transport limit, in that order."""
    return [
        ServerSpec("ours", config.ours),
        ServerSpec("reference", "reference"),
        ServerSpec("transport", "transport", config.transport_stack),
    ]


def run_bench(config: BenchConfig, workdir: Path) -> tuple[list[ServerResult], Cpus]:
    """Every server's results, in `bench_specs` order."""
    cpus = Cpus.pick()
    if cpus.server is None:
        progress("fewer than 2 CPUs available: server and load generator are not pinned")
    specs = bench_specs(config)
    rounds = measure_throughput(specs, config, cpus, workdir)
    results = [ServerResult(s.label, s.kind, rounds[s.label]) for s in specs]
    if not config.skip_memory:
        for result, spec in zip(results, specs, strict=True):
            result.memory = memory_run(spec, config, cpus, workdir)
    return results, cpus


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="OCPP 1.6J CSMS side-by-side benchmark.")
    parser.add_argument("--chargers", type=int, default=200, help="closed-loop chargers")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds per server, all rounds"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="alternating load runs (default: 1 per 5 s)"
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="unmeasured seconds before each run"
    )
    parser.add_argument("--idle-connections", type=int, default=5000)
    parser.add_argument("--skip-memory", action="store_true", help="no idle-connection run")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--ours",
        choices=("csms", "reference"),
        default="csms",
        help="what plays 'ours' (reference: a dry run of the bench without our server)",
    )
    parser.add_argument(
        "--transport-stack",
        choices=("trio-websocket", "wsproto"),
        default="trio-websocket",
        help="the transport limit's WebSocket stack (wsproto: the one our server drives)",
    )
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_in_scratch(name: str, run: Callable[[Path], _T]) -> _T:
    """`run` a benchmark command's work in a scratch folder: the open-file limit raised,
    SIGTERM unwinding like Ctrl-C (so the finally blocks stop every server and generator), a
    `BenchError` or an interrupt ending the process with `name`'s message."""
    raise_nofile_limit()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix=f"csms-{name}-") as tmp:
            return run(Path(tmp))
    except BenchError as exc:
        sys.stderr.write(f"{name}: error: {exc}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write(f"{name}: interrupted\n")
        sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    rounds = args.rounds or max(1, min(4, round(args.duration / 5)))
    config = BenchConfig(
        chargers=args.chargers,
        duration=args.duration,
        rounds=rounds,
        warmup=args.warmup if args.warmup is not None else min(2.0, args.duration / rounds / 2),
        idle_connections=args.idle_connections,
        skip_memory=args.skip_memory,
        ours=args.ours,
        transport_stack=args.transport_stack,
    )
    results, cpus = run_in_scratch("bench", lambda tmp: run_bench(config, tmp))
    print_report(results, config, cpus)
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(report(results, config, cpus), option=orjson.OPT_INDENT_2)
        )


if __name__ == "__main__":
    main()
