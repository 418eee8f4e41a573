"""OCPP-J framing: parse/encode round trips and every way a frame can be malformed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from csms.protocol.errors import FormationViolation, OcppError, ProtocolError
from csms.protocol.frames import (
    MAX_MESSAGE_ID_LENGTH,
    UNKNOWN_MESSAGE_ID,
    Call,
    CallError,
    CallResult,
    MalformedFrame,
    MessageType,
    encode_call,
    encode_error,
    encode_result,
    parse_frame,
)


def _malformed(text: str | bytes) -> MalformedFrame:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(text)
    return caught.value


# -- round trips -----------------------------------------------------------------------


def test_call_round_trip() -> None:
    payload = {"connectorId": 1, "idTag": "ABC", "nested": {"a": [1, 2.5, None, "x"]}}
    text = encode_call("m-1", "StartTransaction", payload)
    assert orjson.loads(text) == [2, "m-1", "StartTransaction", payload]
    assert parse_frame(text) == Call("m-1", "StartTransaction", payload)


def test_call_result_round_trip() -> None:
    text = encode_result("42", {"currentTime": "2026-01-05T08:00:00.000Z"})
    assert orjson.loads(text) == [3, "42", {"currentTime": "2026-01-05T08:00:00.000Z"}]
    assert parse_frame(text) == CallResult("42", {"currentTime": "2026-01-05T08:00:00.000Z"})


def test_call_result_with_empty_payload() -> None:
    assert parse_frame(encode_result("7", {})) == CallResult("7", {})


def test_call_error_round_trip_with_details() -> None:
    text = encode_error("9", "ProtocolError", "bad", {"field": "x"})
    assert orjson.loads(text) == [4, "9", "ProtocolError", "bad", {"field": "x"}]
    assert parse_frame(text) == CallError("9", "ProtocolError", "bad", {"field": "x"})


def test_call_error_details_default_to_empty_object() -> None:
    text = encode_error("9", "GenericError", "")
    assert orjson.loads(text) == [4, "9", "GenericError", "", {}]
    assert parse_frame(text) == CallError("9", "GenericError", "", {})


def test_parse_accepts_bytes() -> None:
    assert parse_frame(b'[2,"1","Heartbeat",{}]') == Call("1", "Heartbeat", {})


def test_non_ascii_survives_round_trip() -> None:
    payload = {"vendorId": "Ünïcødé ⚡", "data": "日本"}
    assert parse_frame(encode_call("u", "DataTransfer", payload)) == Call(
        "u", "DataTransfer", payload
    )


def test_message_id_of_exactly_max_length_is_accepted() -> None:
    message_id = "x" * MAX_MESSAGE_ID_LENGTH
    assert parse_frame(encode_call(message_id, "Heartbeat", {})).message_id == message_id


def test_message_type_values() -> None:
    assert (MessageType.CALL, MessageType.CALLRESULT, MessageType.CALLERROR) == (2, 3, 4)


# -- malformed: unreadable -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "not json", "[2, '1', 'Heartbeat', {}]", "[2,", b"\xff\xfe"])
def test_non_json_is_formation_violation_with_unknown_id(text: str | bytes) -> None:
    exc = _malformed(text)
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == UNKNOWN_MESSAGE_ID
    assert exc.answerable


@pytest.mark.parametrize(
    "text",
    ['{"a": 1}', '"text"', "42", "null", "true", '{"0": 2, "1": "x", "2": "y"}'],
)
def test_not_an_array_is_formation_violation(text: str) -> None:
    exc = _malformed(text)
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == UNKNOWN_MESSAGE_ID
    assert exc.answerable


@pytest.mark.parametrize("message", [[], [2], [2, "1"], [3, "1"], [4, "1"]])
def test_too_short_is_formation_violation(message: list[Any]) -> None:
    exc = _malformed(orjson.dumps(message))
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == UNKNOWN_MESSAGE_ID


@pytest.mark.parametrize("message_id", [1, 1.5, None, [], {}, True, ""])
def test_non_string_or_empty_message_id_is_formation_violation(message_id: Any) -> None:
    exc = _malformed(orjson.dumps([2, message_id, "Heartbeat", {}]))
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == UNKNOWN_MESSAGE_ID


# -- malformed: wrong MessageTypeId ----------------------------------------------------------


@pytest.mark.parametrize("type_id", ["2", 5, 1, 0, -2, 2.0, None, True, [2]])
def test_wrong_message_type_id_is_protocol_error_answered_with_its_id(type_id: Any) -> None:
    exc = _malformed(orjson.dumps([type_id, "abc", "Heartbeat", {}]))
    # 1.6 answers ProtocolError; 2.x names it MessageTypeNotSupported.
    assert isinstance(exc.error, ProtocolError)
    assert exc.error.code_for("ocpp1.6") == "ProtocolError"
    assert exc.error.code_for("ocpp2.0.1") == "MessageTypeNotSupported"
    assert exc.message_id == "abc"
    assert exc.answerable
    assert repr(type_id) in exc.error.description


# -- malformed: message id too long ----------------------------------------------------------


def test_overlong_id_in_call_is_answerable_protocol_error() -> None:
    long_id = "a" * (MAX_MESSAGE_ID_LENGTH + 1)
    exc = _malformed(encode_call(long_id, "Heartbeat", {}))
    assert type(exc.error) is ProtocolError
    assert exc.message_id == long_id
    assert exc.answerable


@pytest.mark.parametrize(
    "message",
    [
        [3, "a" * (MAX_MESSAGE_ID_LENGTH + 1), {}],
        [4, "a" * (MAX_MESSAGE_ID_LENGTH + 1), "GenericError", "", {}],
    ],
)
def test_overlong_id_in_reply_is_not_answerable(message: list[Any]) -> None:
    exc = _malformed(orjson.dumps(message))
    assert type(exc.error) is ProtocolError
    assert not exc.answerable


# -- malformed CALL ------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [[], "x", 1, None, True, [{"a": 1}]])
def test_call_with_non_object_payload_is_formation_violation(payload: Any) -> None:
    exc = _malformed(orjson.dumps([2, "c1", "Heartbeat", payload]))
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == "c1"
    assert exc.answerable


@pytest.mark.parametrize(
    "message",
    [[2, "c1", "Heartbeat"], [2, "c1", "Heartbeat", {}, {}], [2, "c1", "Heartbeat", {}, "x"]],
)
def test_call_of_wrong_length_is_answerable_formation_violation(message: list[Any]) -> None:
    exc = _malformed(orjson.dumps(message))
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == "c1"
    assert exc.answerable


@pytest.mark.parametrize("action", ["", 5, None, {}, ["Heartbeat"]])
def test_call_with_bad_action_is_formation_violation(action: Any) -> None:
    exc = _malformed(orjson.dumps([2, "c1", action, {}]))
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == "c1"
    assert exc.answerable


# -- malformed CALLRESULT / CALLERROR: dropped, never answered --------------------------------


@pytest.mark.parametrize(
    "message",
    [
        [3, "r1", []],
        [3, "r1", "ok"],
        [3, "r1", None],
        [3, "r1", 1],
        [3, "r1", {}, {}],
        [3, "r1", {}, "extra"],
    ],
)
def test_malformed_call_result_is_not_answerable(message: list[Any]) -> None:
    exc = _malformed(orjson.dumps(message))
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == "r1"
    assert not exc.answerable


@pytest.mark.parametrize(
    "message",
    [
        [4, "e1", "GenericError", "desc"],
        [4, "e1", "GenericError", "desc", {}, {}],
        [4, "e1", 5, "desc", {}],
        [4, "e1", "GenericError", None, {}],
        [4, "e1", "GenericError", "desc", []],
        [4, "e1", "GenericError", "desc", None],
    ],
)
def test_malformed_call_error_is_not_answerable(message: list[Any]) -> None:
    exc = _malformed(orjson.dumps(message))
    assert isinstance(exc.error, FormationViolation)
    assert exc.message_id == "e1"
    assert not exc.answerable


def test_malformed_frame_carries_its_error() -> None:
    exc = _malformed("nope")
    assert isinstance(exc.error, OcppError)
    assert str(exc) == exc.error.description
    assert "JSON" in exc.error.description


@pytest.mark.parametrize("text", ['[3,"x"]', '[4,"x"]', "[3]"])
def test_a_short_reply_is_dropped_not_answered(text: str) -> None:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(text)
    assert caught.value.answerable is False


def test_a_short_call_is_answered() -> None:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame('[2,"x"]')
    assert caught.value.answerable is True
    assert isinstance(caught.value.error, FormationViolation)
