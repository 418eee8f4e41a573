"""OCPP 2.1 on the same endpoint: negotiation, the core messages through the 2.1 schemas
into the same ledger, NotImplemented (never a crash) for the rest, and 2.1's frames that
are never answered (SEND, CALLRESULTERROR)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from runtime_harness import MemoryCsms, memory_csms
from support.settings import make_settings
from v201_harness import reading, session_events, station_2x, token, ts

from csms.protocol.adapters import ADAPTERS


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[MemoryCsms]:
    async with memory_csms(make_settings(tmp_path)) as running:
        running.store.upsert_token("TAG-21")
        yield running


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["ocpp2.1", "ocpp2.0.1", "ocpp1.6"], "ocpp2.1"),
        (["ocpp2.0.1", "ocpp2.1"], "ocpp2.0.1"),
        (["ocpp1.6", "ocpp2.1"], "ocpp1.6"),
        (["ocpp3.0", "ocpp2.1"], "ocpp2.1"),
    ],
)
async def test_the_first_offered_version_we_speak_is_chosen(
    server: MemoryCsms, offered: list[str], chosen: str
) -> None:
    ws = await server.connect("CP-NEG", offered)
    assert ws.subprotocol == chosen
    await ws.aclose()
    assert list(ADAPTERS) == ["ocpp2.1", "ocpp2.0.1", "ocpp1.6"]


async def test_core_messages_of_21(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-21", version="ocpp2.1") as station:
        assert (await station.boot())[2]["status"] == "Accepted"
        assert (await station.call("Heartbeat", {}))[0] == 3
        status = await station.call(
            "StatusNotification",
            {"timestamp": ts(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        )
        assert status[0] == 3
        # 2.1 token types are free strings.
        authorize = await station.call("Authorize", {"idToken": token("TAG-21", "VIN")})
        assert authorize[2] == {"idTokenInfo": {"status": "Accepted"}}
        answers = [
            await station.call("TransactionEvent", event)
            for event in session_events("TX-21", "TAG-21", 500, 8_500)
        ]
        meter = await station.call(
            "MeterValues", {"evseId": 1, "meterValue": [reading(40, 8_500, "Sample.Clock")]}
        )
    assert [a[0] for a in answers] == [3, 3, 3]
    assert answers[0][2] == {"idTokenInfo": {"status": "Accepted"}}
    assert meter[0] == 3
    (session,) = server.store.list_sessions(station_id="CP-21")
    assert (session["energy_wh"], session["status"], session["id_tag"]) == (
        8_000,
        "Completed",
        "TAG-21",
    )


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("NotifyReport", {"requestId": 1, "generatedAt": ts(), "seqNo": 0}),
        ("DataTransfer", {"vendorId": "com.example"}),
        ("NotifyAllowedEnergyTransfer", {"transactionId": "T", "allowedEnergyTransfer": ["DC"]}),
        ("FirmwareStatusNotification", {"status": "Installed"}),
        ("NoSuchAction", {}),
    ],
)
async def test_the_rest_of_21_is_not_implemented(
    server: MemoryCsms, action: str, payload: dict[str, object]
) -> None:
    async with station_2x(server, "CP-21-NI", version="ocpp2.1") as station:
        await station.boot()
        answer = await station.call(action, payload)
        assert answer[0] == 4
        assert answer[2] == "NotImplemented"
        assert (await station.call("Heartbeat", {}))[0] == 3


async def test_21_errors_use_2x_codes(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-21-ERR", version="ocpp2.1") as station:
        await station.boot()
        missing = await station.call("Authorize", {})
        assert missing[2] == "OccurrenceConstraintViolation"
        await station.send("not json")
        assert (await station.receive())[:3] == [4, "-1", "RpcFrameworkError"]
        await station.send([9, "m9", "Heartbeat", {}])
        assert (await station.receive())[:3] == [4, "m9", "MessageTypeNotSupported"]


async def test_send_and_callresulterror_are_never_answered(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-21-SEND", version="ocpp2.1") as station:
        await station.boot()
        await station.send([6, "send-1", "NotifyPeriodicEventStream", {"id": 1, "pending": 0}])
        await station.send([5, "cre-1", "InternalError", "oops", {}])
        # The next answer is the heartbeat's: nothing was sent back for either frame.
        heartbeat = await station.call("Heartbeat", {}, message_id="hb-1")
        assert heartbeat[:2] == [3, "hb-1"]
        with pytest.raises(trio.TooSlowError):
            await station.receive(timeout=0.2)
