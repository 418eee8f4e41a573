"""One `csms serve` subprocess that a harness kills and restarts: same database, same ports.

Owns starting the server (its environment: a SQLite file, loopback ports, extra `CSMS_*`
settings), waiting until its OCPP port accepts TCP, killing it with SIGKILL (the crash: no
chance to flush or close anything), stopping it with SIGTERM, and reading its RSS. Every
wait is bounded; the process always dies with the harness (`loadtest.bench.spawn`).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from loadtest.bench import HOST, BenchError, child_env, free_port, spawn, stop_process, tail

START_TIMEOUT_S = 60.0


@dataclass
class CsmsProcess:
    """`csms serve` on `db_path`, listening on the same OCPP port across restarts."""

    workdir: Path
    db_path: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    ocpp_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.ocpp_port}/ocpp"

    @property
    def log_path(self) -> Path:
        return self.workdir / "csms.log"

    def env(self) -> dict[str, str]:
        return child_env(
            {
                "CSMS_DATABASE_URL": f"sqlite:///{self.db_path}",
                "CSMS_OCPP_HOST": HOST,
                "CSMS_OCPP_PORT": str(self.ocpp_port),
                "CSMS_API_HOST": HOST,
                "CSMS_API_PORT": str(self.api_port),
                "CSMS_UNKNOWN_STATIONS": "reject",
                "CSMS_LOG_LEVEL": "warning",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )

    def start(self, timeout: float = START_TIMEOUT_S) -> float:
        """Start the server and wait until it listens; the seconds that took."""
        started = time.perf_counter()
        self.launch()
        self.wait_listening(timeout)
        return time.perf_counter() - started

    def launch(self) -> None:
        """Start the server without waiting. Call it from the main thread: the child's
        parent-death signal follows the thread that forked it, and a worker thread of trio's
        cache can end while the server should live on."""
        if self.process is not None and self.process.poll() is None:
            raise BenchError("the CSMS is already running")
        with self.log_path.open("ab") as log:
            self.process = spawn(
                [sys.executable, "-m", "csms", "serve"],
                None,
                self.env(),
                self.workdir,
                stdout=log,
                stderr=log,
            )
        self.starts += 1

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> None:
        """Block until the OCPP port accepts TCP (any thread may wait)."""
        assert self.process is not None, "launch() first"
        deadline = time.perf_counter() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise BenchError(f"csms serve exited with {code}:\n{tail(self.log_path)}")
            try:
                with socket.create_connection((HOST, self.ocpp_port), timeout=0.5):
                    return
            except OSError:
                if time.perf_counter() > deadline:
                    raise BenchError(f"csms serve not listening after {timeout:.0f} s") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(START_TIMEOUT_S)

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after a grace period); the exit code, None if never started."""
        if self.process is None:
            return None
        stop_process(self.process)
        return self.process.returncode

    def rss_bytes(self) -> int:
        """The server's resident set size now (0 when it is not running)."""
        if self.process is None or self.process.poll() is not None:
            return 0
        try:
            return int(psutil.Process(self.process.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0

    def log_text(self) -> str:
        return tail(self.log_path, 40)
