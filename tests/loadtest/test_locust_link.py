"""The Locust charger's OCPP-J link against a scripted server (websockets' sync server in a
thread, on loopback): CSMS calls answered while idle and during a CALL, a CALLERROR, an
invalid reply, a timeout and a closed connection each reported as the CALL's failure."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from csms.protocol.frames import Call, encode_result
from loadtest.locust_link import (
    CallErrorReply,
    CallTimeout,
    ConnectFailed,
    ConnectionLost,
    InvalidReply,
    OcppLink,
)

Script = Callable[[ServerConnection], None]


@contextmanager
def scripted_server(script: Script, subprotocol: str = "ocpp1.6") -> Iterator[str]:
    """A loopback WebSocket server running `script` on its one connection; its URL."""
    errors: list[BaseException] = []

    def handler(ws: ServerConnection) -> None:
        try:
            script(ws)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    def pick(ws: ServerConnection, offered: Any) -> Any:
        return subprotocol if subprotocol in offered else None

    with serve(handler, "127.0.0.1", 0, select_subprotocol=pick) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        try:
            yield f"ws://127.0.0.1:{port}/ocpp/CP1"
        finally:
            server.shutdown()
            thread.join(5)
    if errors:
        raise errors[0]


def until_closed(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        ws.recv(timeout=3)


def open_link(url: str, answers: list[Call], timeout: float = 2.0) -> OcppLink:
    def answer(call: Call) -> str:
        answers.append(call)
        return encode_result(call.message_id, {"status": "Accepted"})

    return OcppLink.open(url, "ocpp1.6", answer, connect_timeout=2.0, call_timeout=timeout)


def test_csms_calls_are_answered_while_idle_and_while_waiting() -> None:
    seen: list[Any] = []

    def script(ws: ServerConnection) -> None:
        ws.send('[2,"s1","Reset",{"type":"Soft"}]')
        seen.append(orjson.loads(ws.recv(timeout=2)))
        call = orjson.loads(ws.recv(timeout=2))
        ws.send('[2,"s2","ClearCache",{}]')
        seen.append(orjson.loads(ws.recv(timeout=2)))
        ws.send('[3,"stale",{}]')  # a late reply to something else: dropped
        ws.send(orjson.dumps([3, call[1], {"currentTime": "2027-01-15T08:00:00Z"}]).decode())
        until_closed(ws)

    answers: list[Call] = []
    with scripted_server(script) as url:
        link = open_link(url, answers)
        link.idle(2.0, wake=lambda: bool(answers))
        outcome = link.call("Heartbeat", {})
        link.close()
    assert [c.action for c in answers] == ["Reset", "ClearCache"]
    assert seen == [[3, "s1", {"status": "Accepted"}], [3, "s2", {"status": "Accepted"}]]
    assert outcome.error is None and outcome.payload == {"currentTime": "2027-01-15T08:00:00Z"}
    assert outcome.response_time_ms > 0 and outcome.response_length > 10


def test_a_malformed_csms_frame_gets_a_callerror() -> None:
    seen: list[Any] = []

    def script(ws: ServerConnection) -> None:
        ws.send('[2,"s1","Reset"]')
        seen.append(orjson.loads(ws.recv(timeout=2)))
        until_closed(ws)

    with scripted_server(script) as url:
        link = open_link(url, [])
        link.idle(2.0, wake=lambda: True)
        link.close()
    assert seen[0][:3] == [4, "s1", "FormationViolation"]


def replies_with(reply: Callable[[list[Any]], str | None]) -> Script:
    def script(ws: ServerConnection) -> None:
        call = orjson.loads(ws.recv(timeout=2))
        text = reply(call)
        if text is None:
            ws.close()
            return
        if text:
            ws.send(text)
        until_closed(ws)

    return script


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (
            lambda c: orjson.dumps([4, c[1], "SecurityError", "not accepted", {}]).decode(),
            CallErrorReply,
            "CALLERROR SecurityError: not accepted",
        ),
        (lambda c: orjson.dumps([3, c[1], {}]).decode(), InvalidReply, "currentTime"),
        (lambda c: "", CallTimeout, "no answer within 0.5 s"),
        (lambda c: None, ConnectionLost, "connection closed"),
    ],
)
def test_failed_calls_are_reported_with_their_reason(
    reply: Callable[[list[Any]], str | None], error: type[Exception], text: str
) -> None:
    with scripted_server(replies_with(reply)) as url:
        link = open_link(url, [], timeout=0.5)
        outcome = link.call("Heartbeat", {})
        link.close()
    assert isinstance(outcome.error, error) and text in str(outcome.error)
    assert outcome.payload is None


def test_a_server_without_the_subprotocol_is_a_connect_failure() -> None:
    with (
        scripted_server(lambda ws: None, subprotocol="ocpp2.0.1") as url,
        pytest.raises(ConnectFailed, match=r"ocpp1\.6"),
    ):
        open_link(url, [])
