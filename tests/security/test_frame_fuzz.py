"""A byte-level frame fuzzer against a live CSMS over loopback, with an independent oracle.

Hypothesis makes text frames: random bytes and text, arbitrary JSON arrays, CALL-shaped
frames with wrong type ids, ids and actions, and mutants of valid CALLs (truncated, extended,
spliced, NaN, huge numbers, deep nesting, duplicate keys, control characters). Each goes to a
booted 1.6 charger's connection, followed by a sentinel CALL; whatever arrives before the
sentinel's answer is the server's answer to the frame.

The oracle decides from the OCPP-J rules, with the standard library's JSON parser and the
`jsonschema` package (not the server's orjson and fastjsonschema):
invalid UTF-8 closes with 1007; text that is not a JSON array of 3 or more, or whose message
id cannot be read, gets CALLERROR FormationViolation with id "-1"; an unknown MessageTypeId
gets ProtocolError with its id; a reply (3, 4) is dropped; a malformed CALL gets
FormationViolation with its id; an unknown action NotImplemented, a CSMS-only one
NotSupported; a schema violation a constraint CALLERROR, never a CALLRESULT; a valid CALL is
answered with its id. No invalid frame may write a row, and a bystander charger is served
after every tenth frame (the sentinel shows the fuzzing connection itself is served after
each) and at the end.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_harness import (
    Closed,
    ServerThread,
    SyncPeer,
    add_figure,
    bystander_ok,
    count_events,
    row_counts,
    wait_for,
)
from support.settings import make_settings

from csms.protocol import schemas, v16

VERSION = "ocpp1.6"
CONSTRAINT_CODES = {
    "FormationViolation",
    "OccurenceConstraintViolation",
    "PropertyConstraintViolation",
    "TypeConstraintViolation",
}
FUZZER, BYSTANDER = "CP-FUZZ", "CP-BYSTANDER"
EXAMPLES = 800
VALID_CALLS: list[list[Any]] = [
    [2, "v1", "Heartbeat", {}],
    [2, "v2", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}],
    [2, "v3", "Authorize", {"idTag": "TAG1"}],
    [
        2,
        "v4",
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    ],
    [
        2,
        "v5",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {"timestamp": "2026-01-05T08:00:00Z", "sampledValue": [{"value": "10"}]}
            ],
        },
    ],
    [2, "v6", "DataTransfer", {"vendorId": "acme", "data": "x"}],
]


# -- the oracle ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    #: "close", "error", "drop" or "answered"
    kind: str
    code: int | str | None = None
    message_id: str | None = None
    #: For "answered": a CALLRESULT would be wrong (the payload breaks its schema).
    invalid: bool = False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


def _has_surrogates(value: Any) -> bool:
    return any(any(0xD800 <= ord(c) <= 0xDFFF for c in s) for s in _strings(value))


def _has_infinity(value: Any) -> bool:
    """A number too large for a double (1e999): no JSON parser with doubles can read it."""
    if isinstance(value, float):
        return math.isinf(value)
    if isinstance(value, list):
        return any(_has_infinity(v) for v in value)
    if isinstance(value, dict):
        return any(_has_infinity(v) for v in value.values())
    return False


def _widen_big_ints(value: Any) -> Any:
    """Integers beyond 64 bits as floats, as a JSON parser with native integers reads them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, list):
        return [_widen_big_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _widen_big_ints(v) for k, v in value.items()}
    return value


@functools.cache
def _validator(action: str) -> jsonschema.Draft4Validator:
    schema = json.loads(
        importlib.resources.files("ocpp").joinpath("v16", "schemas", f"{action}.json").read_text()
    )
    schema.pop("$id", None)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def _schema_valid(action: str, payload: dict[str, Any]) -> bool:
    return bool(_validator(action).is_valid(payload))


def expect(raw: bytes) -> Expect:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Expect("close", 1007)
    try:
        message = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return Expect("error", "FormationViolation", "-1")
    message = _widen_big_ints(message)
    if _has_surrogates(message) or _has_infinity(message):
        return Expect("error", "FormationViolation", "-1")
    if not isinstance(message, list) or len(message) < 3:
        if isinstance(message, list) and message and message[0] in (3, 4):
            return Expect("drop")
        return Expect("error", "FormationViolation", "-1")
    type_id, message_id = message[0], message[1]
    if not isinstance(message_id, str) or not message_id:
        return Expect("error", "FormationViolation", "-1")
    if type(type_id) is not int or type_id not in (2, 3, 4):
        return Expect("error", "ProtocolError", message_id)
    if type_id != 2:
        return Expect("drop")  # a reply to nothing we sent, well formed or not
    if len(message_id) > 36:
        return Expect("error", "ProtocolError", message_id)
    if len(message) != 4 or not isinstance(message[2], str) or not message[2]:
        return Expect("error", "FormationViolation", message_id)
    action, payload = message[2], message[3]
    if not isinstance(payload, dict):
        return Expect("error", "FormationViolation", message_id)
    if action not in v16.CHARGER_ACTIONS:
        code = "NotSupported" if action in schemas.actions(VERSION) else "NotImplemented"
        return Expect("error", code, message_id)
    return Expect("answered", None, message_id, invalid=not _schema_valid(action, payload))


def test_the_oracle_knows_the_obvious_cases() -> None:
    assert expect(b"\xff\xfe") == Expect("close", 1007)
    assert expect(b'[2, "a", "Heartbeat", {}]') == Expect("answered", None, "a")
    assert expect(b'[2, "a", "Heartbeat", {"x": 1}]').invalid
    assert expect(b'[2, "a", "Heartbeat", NaN]') == Expect("error", "FormationViolation", "-1")
    assert expect(b'[3, "a", {}]') == Expect("drop")
    assert expect(b'[9, "a", "Heartbeat", {}]') == Expect("error", "ProtocolError", "a")
    assert expect(b'[2, "a", "Reset", {}]') == Expect("error", "NotSupported", "a")


# -- the frames ----------------------------------------------------------------------------

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _leaves,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
_type_ids = st.sampled_from([2, 2, 2, 3, 4, 5, 6, 0, -1, 2.0, "2", None, True])
_message_ids = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["", "x" * 36, "y" * 37, "\u00e9\u4e2d", "a\u0000b"]),
    st.integers(),
    st.none(),
)
_actions = st.one_of(
    st.sampled_from(sorted(v16.CHARGER_ACTIONS | v16.CSMS_ACTIONS)),
    st.text(max_size=12),
    st.integers(),
)


@st.composite
def _shaped(draw: st.DrawFn) -> bytes:
    """An array frame of any shape around a type id, id, action and payload."""
    parts = [draw(_type_ids), draw(_message_ids), draw(_actions), draw(_json)]
    parts = parts[: draw(st.integers(0, 4))] + draw(st.lists(_json, max_size=2))
    return json.dumps(parts).encode()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid CALL, then spoiled: cut, grown, spliced, or given hostile JSON."""
    frame = draw(st.sampled_from(VALID_CALLS))
    text = orjson.dumps(frame).decode()
    kind = draw(
        st.sampled_from(
            ["cut", "insert", "delete", "nan", "huge", "deep", "dupkey", "control", "tail"]
        )
    )
    at = draw(st.integers(0, len(text)))
    if kind == "cut":
        text = text[:at]
    elif kind == "insert":
        text = text[:at] + draw(st.text(min_size=1, max_size=6)) + text[at:]
    elif kind == "delete":
        text = text[:at] + text[at + draw(st.integers(1, 6)) :]
    elif kind == "nan":
        value = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0"]))
        text = text[:-2] + ("," if text[-3] != "{" else "") + f'"n":{value}' + "}]"
    elif kind == "huge":
        digits = draw(st.integers(19, 400))
        text = text[:-2] + ("," if text[-3] != "{" else "") + '"n":' + "9" * digits + "}]"
    elif kind == "deep":
        # Depths well below and well above the parsers' nesting limits (both near 1000).
        depth = draw(st.sampled_from([3, 50, 400, 3000]))
        text = text[:-2] + ("," if text[-3] != "{" else "") + '"d":' + "[" * depth
        text += "]" * depth + "}]"
    elif kind == "dupkey":
        text = text[:-2] + ("," if text[-3] != "{" else "") + text[text.index("{") + 1 : -2] + "}]"
    elif kind == "control":
        char = chr(draw(st.integers(0, 31)))
        text = text[:at] + char + text[at:]
    else:
        text += draw(st.sampled_from(["]", ",", " ", "[]", '"x"', "\n"]))
    return text.encode()


FRAMES = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.lists(_json, max_size=5).map(lambda v: json.dumps(v).encode()),
    _shaped(),
    _mutated(),
    _mutated(),
)


# -- the run -------------------------------------------------------------------------------


def settled(database: Path) -> None:
    """Wait until the row counts stop moving (two reads 50 ms apart agree)."""
    previous = row_counts(database)
    while True:
        time.sleep(0.05)
        current = row_counts(database)
        if current == previous:
            return
        previous = current


class Fuzzer:
    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.bystander = SyncPeer.connect(server.port, f"/ocpp/{BYSTANDER}")
        assert self.bystander.boot()[2]["status"] == "Accepted"
        self.peer = self._connect()
        self.sentinels = 0
        self.disconnects = 0
        self.rows_at_close: dict[str, int] = {}
        self.outcomes: dict[str, int] = {}

    def _connect(self) -> SyncPeer:
        peer = SyncPeer.connect(self.server.port, f"/ocpp/{FUZZER}")
        assert peer.boot()[2]["status"] == "Accepted"
        return peer

    def send(self, raw: bytes) -> tuple[list[list[Any]], int | None]:
        """Send `raw` and a sentinel; the frames before the sentinel's answer, and the close
        code if the server closed instead."""
        self.sentinels += 1
        sentinel = f"sentinel-{self.sentinels}"
        self.peer.send_text_bytes(raw)
        # The server may have closed already (1007): the close frame tells.
        with contextlib.suppress(OSError):
            self.peer.send_text(orjson.dumps([2, sentinel, "Sentinel", {}]).decode())
        frames: list[list[Any]] = []
        try:
            while True:
                frame = self.peer.next_frame()
                assert isinstance(frame, list)
                if frame[1] == sentinel:
                    assert frame[2] == "NotImplemented"
                    return frames, None
                frames.append(frame)
        except Closed as closed:
            self.peer.close()
            # Its disconnect is recorded before the next connects: rows stay attributable.
            self.disconnects += 1
            database = self.server.database
            wait_for(lambda: count_events(database, FUZZER, "disconnected") >= self.disconnects)
            self.rows_at_close = row_counts(database)  # before the reconnection's own rows
            self.peer = self._connect()
            return frames, closed.code

    def close(self) -> None:
        self.peer.close()
        self.bystander.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = make_settings(
        tmp_path_factory.mktemp("fuzz"), max_messages_per_second=1e6, message_burst=10**6
    )
    running = ServerThread(settings).start()
    # The fuzzer boots again after every close; the boot-loop alert that would raise is the
    # monitoring's (right) answer to the fuzzer, not a row of any frame's.
    with closing(sqlite3.connect(running.database)) as db, db:
        db.execute("INSERT INTO alert_settings (key, value) VALUES ('boot_loop_boots', 1e9)")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def fuzzer(server: ServerThread) -> Iterator[Fuzzer]:
    fuzz = Fuzzer(server)
    yield fuzz
    fuzz.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=FRAMES)
def test_fuzzed_frames_get_the_oracles_answer(
    server: ServerThread, fuzzer: Fuzzer, raw: bytes
) -> None:
    wanted = expect(raw)
    before = row_counts(server.database)
    frames, close_code = fuzzer.send(raw)
    add_figure("frames fuzzed")
    if close_code:
        outcome = f"close {close_code}"
    elif frames and frames[0][0] == 4:
        outcome = f"CALLERROR {frames[0][2]}"
    else:
        outcome = "CALLRESULT" if frames else "dropped"
    fuzzer.outcomes[outcome] = fuzzer.outcomes.get(outcome, 0) + 1
    if wanted.kind == "close":
        assert close_code == wanted.code, (raw, frames)
    else:
        assert close_code is None, (raw, close_code)
    if wanted.kind == "drop":
        assert frames == [], raw
    elif wanted.kind == "error":
        assert len(frames) == 1, (raw, frames)
        assert frames[0][:3] == [4, wanted.message_id, wanted.code], (raw, frames)
    elif wanted.kind == "answered":
        assert len(frames) == 1 and frames[0][1] == wanted.message_id, (raw, frames)
        if frames[0][0] == 4 and frames[0][2] == "InternalError":
            add_figure("fuzzed frames answered InternalError")
        if wanted.invalid:
            assert frames[0][0] == 4 and frames[0][2] in CONSTRAINT_CODES, (raw, frames)
    if wanted.kind != "answered" or wanted.invalid:
        after = row_counts(server.database)
        if close_code is not None:
            # Only the disconnect is logged (in `events`), as the rows were before the
            # fuzzer reconnected: the frame never got past the WebSocket layer.
            after = dict(fuzzer.rows_at_close)
            before["events"] += 1
        assert after == before, (
            raw,
            {k: (before[k], v) for k, v in after.items() if before.get(k) != v},
        )
    if wanted.kind == "answered":
        # Some valid CALLs (Authorize, Heartbeat) are answered before their commit: let it
        # land, so that the next frame's "before" is not overtaken by it.
        settled(server.database)
    if fuzzer.sentinels % 10 == 0:  # the sentinel already shows the fuzzer's own is served
        bystander_ok(server, fuzzer.bystander, BYSTANDER)


def test_fuzz_summary(server: ServerThread, fuzzer: Fuzzer) -> None:
    """Runs after the fuzzer (file order): the server never crashed; the figures are kept."""
    bystander_ok(server, fuzzer.bystander, BYSTANDER)
    crashes = 0 if server.error is None else 1
    add_figure("frame fuzz server crashes", crashes)
    for outcome, count in sorted(fuzzer.outcomes.items()):
        add_figure(f"frame fuzz outcome [{outcome}]", count)
    assert fuzzer.sentinels >= EXAMPLES
