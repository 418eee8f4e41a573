"""The OCPP endpoint's handshake over real loopback WebSockets: subprotocol, path, id."""

from __future__ import annotations

import pytest
import trio
from runtime_harness import connect_raw, wait_until
from trio_websocket import ConnectionRejected, HandshakeError, open_websocket_url

from csms.runtime.server import Csms


async def _rejection(port: int, path: str, subprotocols: list[str]) -> ConnectionRejected:
    """Open a WebSocket that the server must refuse; return the refusal."""
    url = f"ws://127.0.0.1:{port}{path}"
    with trio.fail_after(5):
        try:
            async with open_websocket_url(url, subprotocols=subprotocols):
                pass
        except HandshakeError as exc:
            assert isinstance(exc, ConnectionRejected), repr(exc)
            return exc
    raise AssertionError(f"the server accepted {path} offering {subprotocols}")


async def test_first_supported_subprotocol_is_chosen(csms: Csms) -> None:
    async with connect_raw(
        csms.ocpp_port, "CP-NEG", subprotocols=["ocpp1.5", "ocpp1.6", "ocpp2.0.1"]
    ) as charger:
        assert charger.ws.subprotocol == "ocpp1.6"
        boot = await charger.boot()
        assert boot[0] == 3
        assert boot[2]["status"] == "Accepted"
        connection = csms.registry.get("CP-NEG")
        assert connection is not None
        assert connection.version == "ocpp1.6"


@pytest.mark.parametrize(
    ("offered", "named"),
    [([], "(none)"), (["ocpp1.5", "soap"], "(ocpp1.5, soap)")],
    ids=["none", "unsupported"],
)
async def test_no_supported_subprotocol_is_refused_with_reason(
    csms: Csms, offered: list[str], named: str
) -> None:
    refusal = await _rejection(csms.ocpp_port, "/ocpp/CP-SUB", offered)
    assert refusal.status_code == 400
    body = (refusal.body or b"").decode()
    assert "no supported OCPP subprotocol offered" in body
    assert named in body
    assert "ocpp1.6" in body  # says what the server does speak
    assert len(csms.registry) == 0


async def test_any_path_prefix_and_last_segment_is_the_id(csms: Csms) -> None:
    async with connect_raw(csms.ocpp_port, "CP7", path="/a/b/c/") as charger:
        boot = await charger.boot()
        assert boot[2]["status"] == "Accepted"
        assert csms.registry.station_ids() == ["CP7"]
    await wait_until(lambda: len(csms.registry) == 0)
    async with connect_raw(csms.ocpp_port, "CP8", path="/") as charger:
        await charger.boot()
        assert csms.registry.station_ids() == ["CP8"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/ocpp/" + "A" * 49, "longer than 48"),
        ("/ocpp/CP%2F1", "may hold only"),
        ("/ocpp/CP%001", "may hold only"),
        ("/", "names no charge point id"),
        ("/ocpp/", "names no charge point id"),
    ],
    ids=["too-long", "encoded-slash", "nul", "empty", "prefix-only"],
)
async def test_bad_station_ids_are_refused(csms: Csms, path: str, reason: str) -> None:
    refusal = await _rejection(csms.ocpp_port, path, ["ocpp1.6"])
    assert refusal.status_code == 400
    assert reason in (refusal.body or b"").decode()
    assert len(csms.registry) == 0


async def test_an_id_of_exactly_48_characters_is_accepted(csms: Csms) -> None:
    station_id = "B" * 48
    async with connect_raw(csms.ocpp_port, station_id) as charger:
        boot = await charger.boot()
        assert boot[2]["status"] == "Accepted"
        assert station_id in csms.registry
