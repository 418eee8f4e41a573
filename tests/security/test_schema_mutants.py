"""Schema mutants of every charger->CSMS action of 1.6 and 2.0.1 (see `schema_mutants`).

Most run through the protocol layer as the connection actor drives it (`OcppSession.receive`,
then the version adapter's `to_event`), which is fast; a sample goes over real sockets to a
live CSMS, with the database's row counts compared before and after and a bystander charger
checked. A mutant answered with a CALLRESULT (or that crashes anything) fails the test; the
share answered with exactly the expected code is reported per action.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schema_mutants import Mutant, mutants, valid_payload
from security_harness import (
    FIGURES,
    ServerThread,
    SyncPeer,
    add_figure,
    bystander_ok,
    row_counts,
)
from support.settings import make_settings

from csms.protocol import schemas
from csms.protocol.adapters import ADAPTERS
from csms.protocol.errors import OcppError
from csms.protocol.frames import encode_call
from csms.protocol.session import CallReceived, FrameRejected, OcppSession

VERSIONS = ("ocpp1.6", "ocpp2.0.1")
ACTIONS = [(v, a) for v in VERSIONS for a in sorted(ADAPTERS[v].CHARGER_ACTIONS)]
PER_ACTION = 40
NOW = datetime(2026, 1, 5, 8, tzinfo=UTC)
#: (version, action) -> [mutants, answered with the expected code]
SHARES: dict[tuple[str, str], list[int]] = {}


def answer_of(version: str, action: str, payload: dict[str, Any]) -> str:
    """What the CSMS's protocol layer answers a CALL with: an error code, or "CALLRESULT"
    when the CALL would reach the ledger."""
    adapter = ADAPTERS[version]
    session = OcppSession(version, adapter.CHARGER_ACTIONS)
    event = session.receive(encode_call("m1", action, payload), 0.0)
    if isinstance(event, FrameRejected):
        return event.error.code_for(version)
    assert isinstance(event, CallReceived)
    try:
        adapter.to_event("CP-MUTANT", action, payload, NOW)
    except OcppError as error:
        return error.code_for(version)
    return "CALLRESULT"


@pytest.mark.parametrize(("version", "action"), ACTIONS, ids=[f"{v}-{a}" for v, a in ACTIONS])
def test_the_unspoiled_payload_is_valid(version: str, action: str) -> None:
    """The base every mutant starts from passes, so each mutant's one change is the fault."""
    payload = valid_payload(version, action)
    schemas.validate_request(version, action, payload)


def _record(version: str, action: str, mutant: Mutant, got: str) -> None:
    share = SHARES.setdefault((version, action), [0, 0])
    share[0] += 1
    share[1] += got == mutant.expected.code_for(version)


@pytest.mark.parametrize(("version", "action"), ACTIONS, ids=[f"{v}-{a}" for v, a in ACTIONS])
@settings(max_examples=PER_ACTION, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_mutants_get_a_callerror_through_the_protocol_layer(
    version: str, action: str, data: st.DataObject
) -> None:
    mutant = data.draw(mutants(version, action))
    got = answer_of(version, action, mutant.payload)
    _record(version, action, mutant, got)
    assert got != "CALLRESULT", (mutant.describe(), mutant.payload)


def test_mutant_shares_per_action() -> None:
    """Runs after the mutants (file order): the share of each action's mutants that got
    exactly the expected code, kept as figures and printed at the end of the run."""
    assert set(SHARES) == set(ACTIONS)
    for (version, action), (total, right) in sorted(SHARES.items()):
        FIGURES[f"mutants {version} {action}"] = f"{right}/{total} expected code"
    total = sum(t for t, _ in SHARES.values())
    right = sum(r for _, r in SHARES.values())
    FIGURES["mutants (protocol layer) total"] = f"{right}/{total} expected code"
    assert total >= len(ACTIONS) * PER_ACTION // 2


# -- a sample over real sockets ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = make_settings(
        tmp_path_factory.mktemp("mutants"), max_messages_per_second=1e6, message_burst=10**6
    )
    running = ServerThread(settings).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def peers(server: ServerThread) -> Iterator[dict[str, SyncPeer]]:
    opened = {
        "ocpp1.6": SyncPeer.connect(server.port, "/ocpp/CP-MUT16", subprotocols=["ocpp1.6"]),
        "ocpp2.0.1": SyncPeer.connect(server.port, "/ocpp/CP-MUT201", subprotocols=["ocpp2.0.1"]),
        "bystander": SyncPeer.connect(server.port, "/ocpp/CP-BYSTANDER"),
    }
    opened["ocpp1.6"].boot()
    opened["bystander"].boot()
    boot201 = {
        "reason": "PowerUp",
        "chargingStation": {"model": "M", "vendorName": "V"},
    }
    assert opened["ocpp2.0.1"].call("BootNotification", boot201)[2]["status"] == "Accepted"
    yield opened
    for peer in opened.values():
        peer.close()


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutants_over_sockets_get_a_callerror_and_write_nothing(
    server: ServerThread, peers: dict[str, SyncPeer], data: st.DataObject
) -> None:
    version, action = data.draw(st.sampled_from(ACTIONS))
    mutant = data.draw(mutants(version, action))
    before = row_counts(server.database)
    peer = peers[version]
    peer.send_text(orjson.dumps([2, "mutant", action, mutant.payload]).decode())
    reply = peer.next_frame()
    add_figure("mutants sent over sockets")
    assert isinstance(reply, list) and reply[:2] == [4, "mutant"], (mutant.describe(), reply)
    # The same answer as the protocol layer gives (the ledger never saw it).
    assert reply[2] == answer_of(version, action, mutant.payload)
    assert row_counts(server.database) == before, mutant.describe()
    bystander_ok(server, peers["bystander"], "CP-BYSTANDER")
