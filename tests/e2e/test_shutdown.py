"""`csms serve` and SIGTERM with a charger still connected: the connection ends first and is
recorded, then the ledger stops, and the process exits 0, promptly."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import trio
from support.charger import connect_charger
from support.server_process import run_cli, running_server

#: Bounds the close handshake the server waits for at shutdown (default 10 s). A server that
#: waits it out (as the trio-websocket based one did: the reader task that would have read
#: the charger's close reply was already cancelled) takes at least this long to stop.
HANDSHAKE_TIMEOUT_S = 5.0


async def test_sigterm_with_a_connected_charger(tmp_path: Path) -> None:
    with running_server(
        tmp_path, extra_env={"CSMS_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT_S)}
    ) as server:
        async with connect_charger(server.ocpp_port, "CP-TERM") as charger:
            assert (await charger.boot())[2]["status"] == "Accepted"
            started = trio.current_time()
            with trio.fail_after(HANDSHAKE_TIMEOUT_S + 10):
                code = await trio.to_thread.run_sync(server.stop)
            took = trio.current_time() - started
            assert charger.ws.closed is not None, "the server left the socket open"
    assert code == 0
    assert "Traceback" not in server.stderr_text()
    # The charger answers the close frame at once: nothing should hold the stop up.
    assert took < HANDSHAKE_TIMEOUT_S / 2, f"SIGTERM took {took:.1f} s"

    shown = run_cli(["stations", "show", "CP-TERM", "--format", "json"], server.env, cwd=tmp_path)
    assert json.loads(shown.stdout)["online"] == 0
    with closing(sqlite3.connect(server.db_path)) as db:
        kinds = [kind for (kind,) in db.execute("SELECT kind FROM events ORDER BY id")]
    # The ledger outlived the connection: its disconnect was still committed.
    assert kinds == ["connected", "boot", "disconnected"]
