"""`csms serve` and `csms ...` as real subprocesses, for end-to-end and CLI tests.

`start_server` runs `python -m csms serve` on a temporary SQLite file and a free loopback
port, waits (bounded) until the OCPP port accepts TCP, and collects the server's stderr in a
file. `ServerProcess.stop` ends it with SIGTERM, then SIGKILL if it lingers; `running_server`
does that in a `finally`. `run_cli` runs one `python -m csms ...` command against the same
configuration. Every wait is bounded; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: Upper bound for a server to start listening or to stop, and for one CLI command.
WAIT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def csms_env(
    db_path: Path,
    *,
    ocpp_port: int | None = None,
    api_port: int | None = None,
    unknown_stations: str = "accept",
    log_level: str = "warning",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """This process's environment without any `CSMS_*`, then a loopback test configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(
        {
            "CSMS_DATABASE_URL": f"sqlite:///{db_path}",
            "CSMS_OCPP_HOST": "127.0.0.1",
            "CSMS_API_HOST": "127.0.0.1",
            "CSMS_OCPP_PORT": str(ocpp_port if ocpp_port is not None else free_port()),
            "CSMS_API_PORT": str(api_port if api_port is not None else free_port()),
            "CSMS_UNKNOWN_STATIONS": unknown_stations,
            "CSMS_LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_cli(
    args: list[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = WAIT_S,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m csms ARGS` to completion (bounded) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "csms", *args],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class ServerProcess:
    """A running `csms serve` subprocess and how to reach it."""

    process: subprocess.Popen[bytes]
    db_path: Path
    env: dict[str, str]
    stderr_path: Path
    _stderr: IO[bytes] = field(repr=False)

    @property
    def ocpp_port(self) -> int:
        return int(self.env["CSMS_OCPP_PORT"])

    def url(self, station_id: str) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp/{station_id}"

    def stderr_text(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = WAIT_S) -> None:
        """Return once the OCPP port accepts TCP; fail (with the server's stderr) if it
        exits first or the deadline passes."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"csms serve exited with {code} before listening:\n{self.stderr_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.ocpp_port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"csms serve not listening on {self.ocpp_port} after {timeout} s:\n"
                    f"{self.stderr_text()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the crash, with no chance to clean up."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT_S)

    def stop(self, timeout: float = WAIT_S) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; its exit code."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=WAIT_S)
            return int(self.process.returncode)
        finally:
            self._stderr.close()


def start_server(
    tmp_path: Path,
    *,
    db_path: Path | None = None,
    ocpp_port: int | None = None,
    unknown_stations: str = "accept",
    log_level: str = "warning",
    extra_env: Mapping[str, str] | None = None,
    name: str = "server",
    timeout: float = WAIT_S,
) -> ServerProcess:
    """Start `python -m csms serve` in `tmp_path` and wait until it listens."""
    db = db_path if db_path is not None else tmp_path / "csms.db"
    env = csms_env(
        db,
        ocpp_port=ocpp_port,
        unknown_stations=unknown_stations,
        log_level=log_level,
        extra=extra_env,
    )
    stderr_path = tmp_path / f"{name}.stderr.log"
    stderr = stderr_path.open("ab")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "csms", "serve"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    except BaseException:
        stderr.close()
        raise
    server = ServerProcess(process, db, env, stderr_path, stderr)
    try:
        server.wait_listening(timeout)
    except BaseException:
        server.stop(timeout=2)
        raise
    return server


@contextmanager
def running_server(tmp_path: Path, **options: Any) -> Iterator[ServerProcess]:
    """`start_server` ... `stop`, whatever happens in between."""
    server = start_server(tmp_path, **options)
    try:
        yield server
    finally:
        server.stop()
