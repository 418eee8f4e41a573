"""Identity fuzz: hostile charge point ids in the handshake URL.

The rule (`csms.domain.identity`): 1 to 48 characters of letters, digits and `-_.*+|@#=:`,
the URL's last path segment, percent-decoded; `.` and `..` are path segments, not ids. A
request target HTTP itself forbids (raw spaces, NUL, non-ASCII bytes) is refused by the HTTP
parser. Every refusal is a 400 with the reason, before any OCPP frame, and leaves no row.
`:` is a legal id character (OCPP's identifierString); it cannot be used to pass as another
station, which the authentication tests show.
"""

from __future__ import annotations

import re
import socket
import string
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_harness import (
    ServerThread,
    SyncPeer,
    add_figure,
    bystander_ok,
    count_events,
    row_counts,
)
from support.settings import make_settings

ID_RULE = re.compile(r"[A-Za-z0-9\-_.*+|@#=:]{1,48}")


def upgrade(port: int, target: bytes) -> tuple[int, bytes]:
    """A hand-written upgrade request for `target` (bytes as they are); the answer's status
    and body."""
    request = (
        b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            return status, b""
        while data := sock.recv(65536):
            body += data
    return status, body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    running = ServerThread(make_settings(tmp_path_factory.mktemp("ids"))).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bystander(server: ServerThread) -> Iterator[SyncPeer]:
    peer = SyncPeer.connect(server.port, "/ocpp/CP-BYSTANDER")
    peer.boot()
    yield peer
    peer.close()


def wait_for_disconnect(server: ServerThread, station_id: str, *, seen: int) -> None:
    """Wait until the server has recorded one more disconnect of `station_id` than `seen`:
    it does so on its own time, and a late record would be taken for a row the next case
    wrote."""
    deadline = time.monotonic() + 10
    while count_events(server.database, station_id, "disconnected") == seen:
        assert time.monotonic() < deadline, f"{station_id!r}: its disconnect was not recorded"
        time.sleep(0.01)


CASES: list[tuple[str, bytes, str]] = [
    # (case, request target, expected reason in the 400's body)
    ("too-long", b"/ocpp/" + b"A" * 49, "longer than 48"),
    ("far-too-long", b"/ocpp/" + b"A" * 4000, "longer than 48"),
    ("encoded-slash", b"/ocpp/CP%2F1", "may hold only"),
    ("encoded-traversal", b"/ocpp/%2E%2E%2Fadmin", "may hold only"),
    ("dot-dot", b"/ocpp/..", "relative path segment"),
    ("dot", b"/ocpp/.", "relative path segment"),
    ("encoded-dot-dot", b"/ocpp/%2e%2e", "relative path segment"),
    ("traversal-then-empty", b"/ocpp/../", "names no charge point id"),
    ("encoded-nul", b"/ocpp/CP%001", "may hold only"),
    ("raw-nul", b"/ocpp/CP\x001", "bad WebSocket handshake"),
    ("encoded-non-ascii", b"/ocpp/CP-%C3%A9", "may hold only"),
    ("raw-non-ascii", "/ocpp/CP-é".encode(), "bad WebSocket handshake"),
    ("empty", b"/ocpp/", "names no charge point id"),
    ("root", b"/", "names no charge point id"),
    ("encoded-space", b"/ocpp/CP%201", "may hold only"),
    ("raw-space", b"/ocpp/CP 1", "bad WebSocket handshake"),
    ("encoded-percent", b"/ocpp/CP%25", "may hold only"),
    ("bad-escape", b"/ocpp/CP%zz", "may hold only"),
    ("crlf-injection", b"/ocpp/CP%0D%0AX-Injected:%201", "may hold only"),
]


@pytest.mark.parametrize(("target", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_ids_are_refused_at_the_handshake(
    server: ServerThread, bystander: SyncPeer, target: bytes, reason: str
) -> None:
    before = row_counts(server.database)
    status, body = upgrade(server.port, target)
    add_figure("identity attacks tried")
    add_figure("identity attacks accepted", status == 101)
    assert status == 400, (target, status, body)
    assert reason in body.decode(errors="replace"), body
    assert row_counts(server.database) == before
    bystander_ok(server, bystander, "CP-BYSTANDER")


def test_a_colon_is_an_id_character_and_a_query_is_not_part_of_the_id(
    server: ServerThread,
) -> None:
    peer = SyncPeer.connect(server.port, "/ocpp/CP:1?as=../admin")
    try:
        assert peer.boot()[2]["status"] == "Accepted"
        assert server.registered("CP:1")
    finally:
        peer.close()
    wait_for_disconnect(server, "CP:1", seen=0)  # before the next test counts rows


_id_alphabet = st.characters(codec="utf-8", exclude_categories=["Cs"])


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(station_id=st.text(_id_alphabet, max_size=60) | st.text(string.printable, max_size=60))
def test_arbitrary_ids_follow_the_rule(
    server: ServerThread, bystander: SyncPeer, station_id: str
) -> None:
    """Any id, percent-encoded into the URL: accepted exactly when the rule allows it."""
    target = b"/ocpp/" + quote(station_id, safe="").encode()
    usable = ID_RULE.fullmatch(station_id) is not None and station_id not in {".", ".."}
    disconnects = count_events(server.database, station_id, "disconnected") if usable else 0
    before = row_counts(server.database)
    status, body = upgrade(server.port, target)
    add_figure("identity fuzz ids tried")
    if usable:
        assert status == 101, (station_id, status, body)
        wait_for_disconnect(server, station_id, seen=disconnects)
    else:
        assert status == 400, (station_id, status, body)
        after = row_counts(server.database)
        assert after == before, {
            t: (before.get(t), n) for t, n in after.items() if n != before.get(t)
        }
    bystander_ok(server, bystander, "CP-BYSTANDER")
