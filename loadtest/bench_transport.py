"""The transport limit the benchmark compares against: WebSocket and OCPP-J framing, nothing else.

A trio server that parses every message with `csms.protocol.frames.parse_frame` and answers
every CALL with an empty CALLRESULT `[3, id, {}]`: no schema validation, no session state, no
ledger, no database. Whatever a CSMS on the same WebSocket stack does beyond this costs
throughput, so ours/transport is the share of the bare transport our server keeps.

Two stacks: `trio-websocket` (the library's `serve_websocket`, a reader task per connection)
and `wsproto` (the `ServerWebSocket` our server drives in the connection's own task). The
second is the honest ceiling for our server, which uses that stack.

    python -m loadtest.bench_transport --port 9200 [--stack trio-websocket|wsproto]
"""

from __future__ import annotations

import argparse
import contextlib
from functools import partial

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from csms.protocol.frames import Call, MalformedFrame, encode_error, encode_result, parse_frame
from csms.runtime.websocket import Decision, Handshake, ServerWebSocket, WebSocketClosed

SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
STACKS = ("trio-websocket", "wsproto")
MAX_MESSAGE_SIZE = 256 * 1024


def answer(text: str, version: str = "ocpp1.6") -> str | None:
    """The reply to one message: `[3, id, {}]` for a CALL, a CALLERROR (in `version`'s
    spelling) for a broken frame that may be answered, nothing for replies."""
    try:
        frame = parse_frame(text)
    except MalformedFrame as exc:
        if not exc.answerable:
            return None
        error = exc.error
        return encode_error(exc.message_id, error.code_for(version), error.description)
    if isinstance(frame, Call):
        return encode_result(frame.message_id, {})
    return None


def pick_subprotocol(offered: tuple[str, ...] | list[str]) -> str | None:
    return next((p for p in offered if p in SUBPROTOCOLS), None)


# -- trio-websocket ----------------------------------------------------------------------------


async def handle_trio_websocket(request: WebSocketRequest) -> None:
    subprotocol = pick_subprotocol(request.proposed_subprotocols)
    if subprotocol is None:
        await request.reject(400, body=b"no supported OCPP subprotocol offered")
        return
    ws = await request.accept(subprotocol=subprotocol)
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await ws.get_message()
            text = message if isinstance(message, str) else message.decode()
            reply = answer(text, subprotocol)
            if reply is not None:
                await ws.send_message(reply)


async def serve_trio_websocket(host: str, port: int) -> None:
    await serve_websocket(
        handle_trio_websocket, host, port, ssl_context=None, max_message_size=MAX_MESSAGE_SIZE
    )


# -- wsproto (our server's stack) --------------------------------------------------------------


async def decide(handshake: Handshake) -> Decision:
    subprotocol = pick_subprotocol(handshake.subprotocols)
    if subprotocol is None:
        return None, (400, "no supported OCPP subprotocol offered")
    return subprotocol, None


async def handle_stream(stream: trio.SocketStream) -> None:
    ws = ServerWebSocket(stream, max_message_size=MAX_MESSAGE_SIZE)
    if await ws.handshake(decide) is None or ws.subprotocol is None:
        return
    version = ws.subprotocol
    with contextlib.suppress(WebSocketClosed):
        while True:
            reply = answer(await ws.receive(), version)
            if reply is not None:
                await ws.send(reply)


async def serve_wsproto(host: str, port: int) -> None:
    await trio.serve_tcp(handle_stream, port, host=host)


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--stack", choices=STACKS, default="trio-websocket")
    args = parser.parse_args(argv)
    serve = serve_trio_websocket if args.stack == "trio-websocket" else serve_wsproto
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(partial(serve, args.host, args.port))


if __name__ == "__main__":
    main()
