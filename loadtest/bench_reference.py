"""The reference CSMS the benchmark compares against: the `ocpp` package's quick start.

Written the way that package's documentation shows a central system: asyncio,
`websockets.serve`, and a `ChargePoint` subclass whose `@on(...)` handlers answer the charger's
CALLs (with the package's own schema validation of every message). It keeps nothing: no
database, no ledger; StartTransaction hands out an incrementing transaction id.

    python -m loadtest.bench_reference --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("ocpp1.6")
HEARTBEAT_INTERVAL_S = 300

_Handler = TypeVar("_Handler", bound=Callable[..., Any])
_transaction_ids = itertools.count(1)


def handles(action: Action) -> Callable[[_Handler], _Handler]:
    """`ocpp.routing.on`, typed for mypy (the package ships no type hints)."""
    return cast(Callable[[_Handler], _Handler], on(action))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def accepted() -> IdTagInfo:
    return IdTagInfo(status=AuthorizationStatus.accepted)


class ChargePoint(OcppChargePoint):  # type: ignore[misc]  # untyped base class
    """One connected charger, with a handler per 1.6 action the benchmark sends."""

    @handles(Action.boot_notification)
    def on_boot_notification(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(
            current_time=now_iso(),
            interval=HEARTBEAT_INTERVAL_S,
            status=RegistrationStatus.accepted,
        )

    @handles(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=now_iso())

    @handles(Action.status_notification)
    def on_status_notification(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @handles(Action.authorize)
    def on_authorize(self, **_: Any) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info=accepted())

    @handles(Action.start_transaction)
    def on_start_transaction(self, **_: Any) -> call_result.StartTransaction:
        return call_result.StartTransaction(
            transaction_id=next(_transaction_ids), id_tag_info=accepted()
        )

    @handles(Action.meter_values)
    def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @handles(Action.stop_transaction)
    def on_stop_transaction(self, **_: Any) -> call_result.StopTransaction:
        return call_result.StopTransaction(id_tag_info=accepted())


def charge_point_id(path: str) -> str:
    """The last non-empty path segment: `/ocpp/CP001` -> `CP001`."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


async def on_connect(connection: ServerConnection) -> None:
    if connection.subprotocol is None:
        await connection.close(1002, "no supported subprotocol (ocpp1.6)")
        return
    assert connection.request is not None
    charge_point = ChargePoint(charge_point_id(connection.request.path), connection)
    with contextlib.suppress(ConnectionClosed):
        await charge_point.start()


async def serve(host: str, port: int) -> None:
    async with websockets.serve(on_connect, host, port, subprotocols=[SUBPROTOCOL]) as server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
