"""`csms serve --workers N`: N `csms serve` processes sharing the OCPP and API ports.

Each child binds the ports with SO_REUSEPORT (the kernel spreads new connections over them)
and is a node of the cluster in its own right. The parent only supervises: it forwards SIGTERM
and SIGINT to the children, and when one child exits it stops the others and exits with the
first non-zero exit code.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

import trio

#: How long children get to stop after SIGTERM before they are killed.
STOP_TIMEOUT_S = 15.0


async def open_shared_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """A TCP listener on `host:port` that other processes may bind too (SO_REUSEPORT)."""
    return [trio.SocketListener(trio.socket.from_stdlib_socket(shared_socket(host, port)))]


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening SO_REUSEPORT socket on the first address `host` resolves to."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def run_workers(count: int, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run `count` copies of `python -m csms ARGV` with `env` until they end; an exit code."""
    child_env = {**env, "CSMS_WORKERS": "1", "CSMS_REUSE_PORT": "true"}
    children = [
        subprocess.Popen([sys.executable, "-m", "csms", *argv], env=child_env) for _ in range(count)
    ]
    stopping = False

    def forward(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
        if not stopping:
            forward(signal.SIGTERM, None)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [child.returncode for child in children]
    return next((code for code in codes if code not in (0, -signal.SIGTERM)), 0)
