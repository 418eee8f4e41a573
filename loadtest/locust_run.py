"""Running Locust headless as a subprocess, and reading the CSV stats it writes.

Owns: the command line for a headless run of `loadtest/locustfile.py` (with `--ocpp-*`
options), starting it like the bench starts its children (pinned to a CPU, dying with its
parent, its stderr kept in a log while we watch it for "All users spawned"), stopping it with
SIGTERM (Locust then writes its CSVs), and `read_stats` for `PREFIX_stats.csv`: one
`ActionStats` per (request type, name), with Locust's own percentiles (whole milliseconds).
Used by `loadtest.capacity` and the tests.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from loadtest.bench import REPO_ROOT, child_setup, stop_process

LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"
SPAWNED_MARK = b"All users spawned"
CPU_WARNING_MARK = b"CPU usage above"
#: What `loadtest.ocpp_user` logs when `--ocpp-settle` has passed and the stats start anew.
STATS_RESET_LOG = "OCPP stats reset after settling"
AGGREGATED = ("", "Aggregated")


def locust_argv(
    host: str,
    users: int,
    spawn_rate: float,
    csv_prefix: Path,
    *,
    run_time_s: float | None = None,
    options: Mapping[str, object] | None = None,
    extra: Sequence[str] = (),
    locustfile: Path = LOCUSTFILE,
) -> list[str]:
    """`python -m locust -f LOCUSTFILE --headless ...`; `options` become `--ocpp-KEY VALUE`
    (underscores in KEY read as dashes)."""
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless"]
    argv += ["--only-summary", "--host", host, "-u", str(users), "-r", f"{spawn_rate:g}"]
    argv += ["--csv", str(csv_prefix), "--stop-timeout", "2"]
    if run_time_s is not None:
        argv += ["-t", f"{max(1, round(run_time_s))}s"]
    return [*argv, *ocpp_flags(options), *extra]


def locust_worker_argv(
    master_port: int,
    *,
    options: Mapping[str, object] | None = None,
    locustfile: Path = LOCUSTFILE,
) -> list[str]:
    """A Locust worker of a master on this machine (`--master-bind-port master_port`)."""
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--worker"]
    argv += ["--master-host=127.0.0.1", f"--master-port={master_port}"]
    return [*argv, *ocpp_flags(options)]


def ocpp_flags(options: Mapping[str, object] | None) -> list[str]:
    """`{"id_prefix": "A-"}` -> `["--ocpp-id-prefix", "A-"]`."""
    flags = []
    for key, value in (options or {}).items():
        flags += [f"--ocpp-{key.replace('_', '-')}", str(value)]
    return flags


@dataclass
class RunningLocust:
    """A Locust subprocess; `spawned` is set once it has started all its users, `reset` once
    its stats started anew after `--ocpp-settle`."""

    process: subprocess.Popen[bytes]
    log: Path
    spawned: threading.Event
    reset: threading.Event
    cpu_warning: threading.Event
    _reader: threading.Thread

    def wait_spawned(self, timeout: float) -> bool:
        """True once all users are spawned; False if Locust exited or the time ran out."""
        return self._wait(self.spawned, timeout)

    def wait_reset(self, timeout: float) -> bool:
        """True once the stats were reset after settling; False as `wait_spawned`."""
        return self._wait(self.reset, timeout)

    def _wait(self, event: threading.Event, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if event.wait(0.2):
                return True
            if self.process.poll() is not None:
                return event.is_set()
        return False

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (Locust writes its CSVs and exits), SIGKILL after `grace`; exit code."""
        stop_process(self.process, grace)
        self._reader.join(5)
        return int(self.process.returncode)

    def wait(self, timeout: float) -> int:
        """Wait for Locust to end by itself (its `-t`), then reap it; its exit code."""
        try:
            self.process.wait(timeout)
        finally:
            self.stop()
        return int(self.process.returncode)


def start_locust(
    argv: list[str], cwd: Path, env: dict[str, str], cpu: int | None, log: Path
) -> RunningLocust:
    """Start Locust pinned to `cpu`; its stderr goes to `log` through a reader thread."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        preexec_fn=child_setup(cpu),
        start_new_session=True,
    )
    marks = {
        SPAWNED_MARK: threading.Event(),
        STATS_RESET_LOG.encode(): threading.Event(),
        CPU_WARNING_MARK: threading.Event(),
    }
    assert process.stderr is not None
    reader = threading.Thread(target=_copy_log, args=(process.stderr, log, marks), daemon=True)
    reader.start()
    spawned, reset, cpu_warning = marks.values()
    return RunningLocust(process, log, spawned, reset, cpu_warning, reader)


def _copy_log(stream: IO[bytes], log: Path, marks: dict[bytes, threading.Event]) -> None:
    """Copy Locust's stderr to `log`, setting the event of each mark a line carries."""
    with log.open("ab") as out:
        for line in stream:
            out.write(line)
            for mark, event in marks.items():
                if mark in line:
                    event.set()
        out.flush()


# -- CSV stats ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionStats:
    """One row of Locust's `_stats.csv`: a request type and name (an OCPP action)."""

    request_type: str
    name: str
    requests: int
    failures: int
    avg_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def key(self) -> tuple[str, str]:
        return self.request_type, self.name


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "N/A" where Locust has no samples
        return 0.0


def read_stats(csv_prefix: Path) -> dict[tuple[str, str], ActionStats]:
    """Locust's `{prefix}_stats.csv`, keyed by (request type, name); `AGGREGATED` is the
    total row. Empty if Locust wrote no file."""
    path = Path(f"{csv_prefix}_stats.csv")
    if not path.exists():
        return {}
    rows: dict[tuple[str, str], ActionStats] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            stats = ActionStats(
                request_type=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                avg_ms=_number(row["Average Response Time"]),
                max_ms=_number(row["Max Response Time"]),
                p50_ms=_number(row["50%"]),
                p90_ms=_number(row["90%"]),
                p99_ms=_number(row["99%"]),
            )
            rows[stats.key] = stats
    return rows


def read_failures(csv_prefix: Path) -> list[dict[str, str]]:
    """Locust's `{prefix}_failures.csv` rows: Method, Name, Error, Occurrences."""
    path = Path(f"{csv_prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
