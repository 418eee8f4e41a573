"""Live connections over loopback: newest connection wins, and CSMS-initiated commands."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from runtime_harness import connect_raw, open_store, wait_until
from support.charger import connect_charger
from trio_websocket import ConnectionClosed

from csms.protocol.errors import (
    NotImplementedCall,
    NotSupported,
    OccurenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    TypeConstraintViolation,
)
from csms.runtime.registry import CommandRejected, StationOffline
from csms.runtime.server import Csms

# -- newest connection wins ---------------------------------------------------------------


async def test_a_second_connection_replaces_the_first(csms: Csms) -> None:
    async with connect_raw(csms.ocpp_port, "CP-DUP") as first:
        assert (await first.boot())[2]["status"] == "Accepted"
        old = csms.registry.get("CP-DUP")
        assert old is not None
        async with connect_charger(csms.ocpp_port, "CP-DUP") as second:
            # The server closes the older socket: its reader sees the close.
            with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
                await first.ws.get_message()
            assert closed.value.reason is not None
            assert closed.value.reason.code == 1000
            assert "replaced" in (closed.value.reason.reason or "")

            new = csms.registry.get("CP-DUP")
            assert new is not None and new is not old
            assert len(csms.registry) == 1

            async with open_store(csms.settings) as store:
                await wait_until(lambda: bool(store.events("CP-DUP", "replaced")))
                station = store.get_station("CP-DUP")
                assert station is not None
                assert station["online"] == 1
                # "replaced" is the old connection's end; no "disconnected" was recorded.
                assert store.events("CP-DUP", "disconnected") == []

            # The newer connection is the one that works, and commands reach it.
            heartbeat = await second.call("Heartbeat", {})
            assert heartbeat[0] == 3
            assert await csms.registry.send_command("CP-DUP", "ClearCache", {}) == {
                "status": "Accepted"
            }
            assert second.received_calls == [("ClearCache", {})]


# -- every 1.6 command through the runtime --------------------------------------------------

COMMANDS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "RemoteStartTransaction",
        {"connectorId": 1, "idTag": "TAG1"},
        {"status": "Accepted"},
    ),
    ("RemoteStopTransaction", {"transactionId": 42}, {"status": "Rejected"}),
    ("Reset", {"type": "Soft"}, {"status": "Accepted"}),
    ("UnlockConnector", {"connectorId": 2}, {"status": "Unlocked"}),
    (
        "ChangeConfiguration",
        {"key": "HeartbeatInterval", "value": "60"},
        {"status": "RebootRequired"},
    ),
    (
        "GetConfiguration",
        {"key": ["HeartbeatInterval", "NoSuchKey"]},
        {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknownKey": ["NoSuchKey"],
        },
    ),
    ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, {"status": "Scheduled"}),
    ("ClearCache", {}, {"status": "Rejected"}),
    (
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "connectorId": 1},
        {"status": "Accepted"},
    ),
]


@pytest.mark.parametrize(
    ("action", "payload", "answer"), COMMANDS, ids=[action for action, _, _ in COMMANDS]
)
async def test_command_reaches_the_charger_and_returns_its_answer(
    csms: Csms, action: str, payload: dict[str, Any], answer: dict[str, Any]
) -> None:
    async with connect_charger(csms.ocpp_port, "CP-CMD", answers={action: answer}) as charger:
        await charger.boot()
        with trio.fail_after(5):
            result = await csms.registry.send_command("CP-CMD", action, payload)
        assert result == answer
        assert charger.received_calls == [(action, payload)]


@pytest.mark.parametrize(
    ("action", "payload", "error"),
    [
        ("Reset", {}, OccurenceConstraintViolation),
        ("Reset", {"type": "Gentle"}, PropertyConstraintViolation),
        ("UnlockConnector", {"connectorId": "one"}, TypeConstraintViolation),
        ("RemoteStartTransaction", {"idTag": "T" * 21}, PropertyConstraintViolation),
        ("LaunchRocket", {}, NotImplementedCall),
    ],
    ids=["missing-field", "bad-enum", "wrong-type", "too-long", "unknown-action"],
)
async def test_invalid_command_raises_and_sends_nothing(
    csms: Csms, action: str, payload: dict[str, Any], error: type[OcppError]
) -> None:
    async with connect_charger(csms.ocpp_port, "CP-INV") as charger:
        await charger.boot()
        with trio.fail_after(5), pytest.raises(error):
            await csms.registry.send_command("CP-INV", action, payload)
        # The connection is unharmed: the next valid command goes out and is answered.
        assert await csms.registry.send_command("CP-INV", "Reset", {"type": "Hard"}) == {
            "status": "Accepted"
        }
        assert charger.received_calls == [("Reset", {"type": "Hard"})]


async def test_command_to_an_unknown_station_is_station_offline(csms: Csms) -> None:
    with pytest.raises(StationOffline):
        await csms.registry.send_command("CP-NOWHERE", "Reset", {"type": "Soft"})


async def test_command_to_a_station_that_left_is_station_offline(csms: Csms) -> None:
    async with connect_charger(csms.ocpp_port, "CP-GONE") as charger:
        await charger.boot()
    await wait_until(lambda: "CP-GONE" not in csms.registry)
    with pytest.raises(StationOffline):
        await csms.registry.send_command("CP-GONE", "Reset", {"type": "Soft"})


async def test_charger_callerror_is_command_rejected(csms: Csms) -> None:
    async with connect_raw(csms.ocpp_port, "CP-ERR") as charger:
        await charger.boot()
        async with trio.open_nursery() as nursery:

            async def answer_with_error() -> None:
                call = await charger.receive()
                assert call[0] == 2 and call[2] == "UnlockConnector"
                await charger.send([4, call[1], "NotSupported", "no lock here", {"x": 1}])

            nursery.start_soon(answer_with_error)
            with trio.fail_after(5), pytest.raises(CommandRejected) as rejected:
                await csms.registry.send_command("CP-ERR", "UnlockConnector", {"connectorId": 1})
        assert isinstance(rejected.value.error, NotSupported)
        assert rejected.value.error.description == "no lock here"
        assert rejected.value.error.details == {"x": 1}


async def test_invalid_callresult_from_charger_is_command_rejected(csms: Csms) -> None:
    async with connect_raw(csms.ocpp_port, "CP-BADRES") as charger:
        await charger.boot()
        async with trio.open_nursery() as nursery:

            async def answer_badly() -> None:
                call = await charger.receive()
                await charger.send([3, call[1], {"status": "Maybe"}])

            nursery.start_soon(answer_badly)
            with trio.fail_after(5), pytest.raises(CommandRejected) as rejected:
                await csms.registry.send_command("CP-BADRES", "Reset", {"type": "Soft"})
        assert isinstance(rejected.value.error, PropertyConstraintViolation)


async def test_concurrent_commands_are_sent_one_at_a_time(csms: Csms) -> None:
    async with connect_raw(csms.ocpp_port, "CP-SER") as charger:
        await charger.boot()
        results: dict[str, dict[str, Any]] = {}

        async def command(action: str, payload: dict[str, Any]) -> None:
            results[action] = await csms.registry.send_command("CP-SER", action, payload)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(command, "Reset", {"type": "Soft"})
                nursery.start_soon(command, "ClearCache", {})
                first = await charger.receive()
                assert first[0] == 2
                # While the first CALL is unanswered, no second CALL may arrive.
                with trio.move_on_after(0.3):
                    unexpected = await charger.receive()
                    raise AssertionError(f"second CALL while one is outstanding: {unexpected}")
                answers = {"Reset": {"status": "Accepted"}, "ClearCache": {"status": "Rejected"}}
                await charger.send([3, first[1], answers[first[2]]])
                second = await charger.receive()
                assert second[0] == 2
                assert second[1] != first[1]
                assert {first[2], second[2]} == {"Reset", "ClearCache"}
                await charger.send([3, second[1], answers[second[2]]])
        assert results == {"Reset": {"status": "Accepted"}, "ClearCache": {"status": "Rejected"}}
