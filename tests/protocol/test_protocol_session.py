"""`OcppSession`, tested the h11 way: two sans-I/O sessions wired back to back, time passed in.

`csms` is the server's end (it accepts the charger-initiated actions), `charger` the charge
point's end (it accepts the CSMS-initiated actions). Text produced by one is fed to the other.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from csms.protocol import v16
from csms.protocol.errors import (
    FormationViolation,
    InternalError,
    NotImplementedCall,
    NotSupported,
    OccurenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    ProtocolError,
    TypeConstraintViolation,
)
from csms.protocol.frames import encode_call, encode_error, encode_result
from csms.protocol.session import (
    CallAnswered,
    CallFailed,
    CallInProgress,
    CallReceived,
    FrameRejected,
    NoSuchCall,
    OcppSession,
    PendingCall,
    ReplyDropped,
)

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
BOOT_OK = {"status": "Accepted", "currentTime": "2026-01-05T08:00:00.000Z", "interval": 300}
TIMEOUT = 30.0


def make_pair(**kwargs: Any) -> tuple[OcppSession, OcppSession]:
    csms = OcppSession("ocpp1.6", v16.CHARGER_ACTIONS, call_timeout=TIMEOUT, **kwargs)
    charger = OcppSession("ocpp1.6", v16.CSMS_ACTIONS, call_timeout=TIMEOUT, **kwargs)
    return csms, charger


def frame(text: str) -> list[Any]:
    decoded: list[Any] = orjson.loads(text)
    return decoded


def received(session: OcppSession, text: str | bytes, now: float = 0.0) -> CallReceived:
    event = session.receive(text, now)
    assert isinstance(event, CallReceived), event
    return event


def rejected(session: OcppSession, text: str, now: float = 0.0) -> FrameRejected:
    event = session.receive(text, now)
    assert isinstance(event, FrameRejected), event
    return event


# -- a full exchange in each direction -------------------------------------------------------


def test_charger_call_answered_by_csms() -> None:
    csms, charger = make_pair()
    pending, text = charger.send_call("BootNotification", BOOT, now=10.0)
    assert pending == PendingCall("1", "BootNotification", BOOT, 10.0, 10.0 + TIMEOUT)
    assert charger.outbound == pending
    assert charger.next_deadline == 10.0 + TIMEOUT
    assert frame(text) == [2, "1", "BootNotification", BOOT]

    event = received(csms, text, now=10.5)
    assert event.received_at == 10.5
    assert (event.call.message_id, event.call.action, event.call.payload) == (
        "1",
        "BootNotification",
        BOOT,
    )
    assert csms.inbound == event.call

    reply = csms.reply_result("1", BOOT_OK)
    assert frame(reply) == [3, "1", BOOT_OK]
    assert csms.inbound is None

    answered = charger.receive(reply, now=11.0)
    assert answered == CallAnswered(pending, BOOT_OK)
    assert charger.outbound is None
    assert charger.next_deadline is None


def test_csms_call_answered_by_charger() -> None:
    csms, charger = make_pair()
    pending, text = csms.send_call("Reset", {"type": "Hard"}, now=0.0)
    event = received(charger, text)
    assert event.call.action == "Reset"
    answered = csms.receive(charger.reply_result(event.call.message_id, {"status": "Accepted"}), 1)
    assert answered == CallAnswered(pending, {"status": "Accepted"})


def test_one_call_in_flight_per_direction_at_the_same_time_even_with_equal_ids() -> None:
    csms, charger = make_pair()
    from_charger, up = charger.send_call("Heartbeat", {}, now=0.0)
    from_csms, down = csms.send_call("ClearCache", {}, now=0.0)
    assert from_charger.message_id == from_csms.message_id == "1"

    # Both CALLs cross on the wire; each side holds one inbound and one outbound.
    up_call = received(csms, up).call
    down_call = received(charger, down).call
    assert csms.inbound == up_call and csms.outbound == from_csms
    assert charger.inbound == down_call and charger.outbound == from_charger

    heartbeat_reply = csms.reply_result("1", {"currentTime": "2026-01-05T08:00:00Z"})
    clear_reply = charger.reply_result("1", {"status": "Accepted"})
    assert charger.receive(heartbeat_reply, 1) == CallAnswered(
        from_charger, {"currentTime": "2026-01-05T08:00:00Z"}
    )
    assert csms.receive(clear_reply, 1) == CallAnswered(from_csms, {"status": "Accepted"})
    assert csms.inbound is None and csms.outbound is None
    assert charger.inbound is None and charger.outbound is None


def test_message_ids_come_from_the_injected_generator() -> None:
    ids = (f"id-{n}" for n in itertools.count())
    session = OcppSession("ocpp1.6", v16.CHARGER_ACTIONS, new_message_id=lambda: next(ids))
    pending, text = session.send_call("ClearCache", {}, now=0)
    assert pending.message_id == "id-0"
    assert frame(text)[1] == "id-0"


def test_default_message_ids_are_unique_per_session() -> None:
    csms, charger = make_pair()
    seen = set()
    for n in range(5):
        pending, text = charger.send_call("Heartbeat", {}, now=n)
        seen.add(pending.message_id)
        received(csms, text)
        charger.receive(
            csms.reply_result(pending.message_id, {"currentTime": "2026-01-05T08:00:00Z"}), n
        )
    assert len(seen) == 5


def test_receive_accepts_bytes() -> None:
    csms, charger = make_pair()
    _, text = charger.send_call("Heartbeat", {}, now=0)
    assert received(csms, text.encode()).call.action == "Heartbeat"


# -- one outstanding CALL per direction ------------------------------------------------------


def test_send_call_twice_raises_call_in_progress() -> None:
    _, charger = make_pair()
    first, _ = charger.send_call("Heartbeat", {}, now=0)
    with pytest.raises(CallInProgress, match="Heartbeat"):
        charger.send_call("Authorize", {"idTag": "A"}, now=1)
    assert charger.outbound == first


def test_send_call_is_free_again_after_the_reply() -> None:
    csms, charger = make_pair()
    _, text = charger.send_call("Heartbeat", {}, now=0)
    received(csms, text)
    charger.receive(csms.reply_result("1", {"currentTime": "2026-01-05T08:00:00Z"}), 1)
    second, _ = charger.send_call("Authorize", {"idTag": "A"}, now=2)
    assert second.message_id == "2"


def test_send_call_validates_its_payload() -> None:
    _, charger = make_pair()
    with pytest.raises(OccurenceConstraintViolation):
        charger.send_call("BootNotification", {"chargePointVendor": "V"}, now=0)
    assert charger.outbound is None  # nothing is in flight after a refused call
    charger.send_call("BootNotification", BOOT, now=0)


def test_send_call_without_outgoing_validation_sends_anything() -> None:
    _, charger = make_pair(validate_outgoing=False)
    _, text = charger.send_call("BootNotification", {"x": 1}, now=0)
    assert frame(text) == [2, "1", "BootNotification", {"x": 1}]


def test_call_reusing_the_in_flight_id_is_refused() -> None:
    csms, _ = make_pair()
    original = received(csms, encode_call("A1", "Heartbeat", {})).call
    event = rejected(csms, encode_call("A1", "Authorize", {"idTag": "X"}))
    assert type(event.error) is ProtocolError
    assert "still in flight" in event.error.description
    assert event.reply is not None
    assert frame(event.reply)[:3] == [4, "A1", "ProtocolError"]
    assert csms.inbound == original  # the first CALL is still the one being processed
    assert frame(csms.reply_result("A1", {"currentTime": "2026-01-05T08:00:00Z"}))[0] == 3


def test_second_call_while_one_is_in_flight_is_refused() -> None:
    csms, _ = make_pair()
    original = received(csms, encode_call("A1", "Heartbeat", {})).call
    event = rejected(csms, encode_call("A2", "Heartbeat", {}))
    assert type(event.error) is ProtocolError
    assert "another CALL" in event.error.description
    assert event.reply is not None
    assert frame(event.reply)[:3] == [4, "A2", "ProtocolError"]
    assert csms.inbound == original
    # Once answered, the next CALL is taken.
    csms.reply_result("A1", {"currentTime": "2026-01-05T08:00:00Z"})
    assert received(csms, encode_call("A2", "Heartbeat", {})).call.message_id == "A2"


def test_same_id_may_be_reused_once_answered() -> None:
    csms, _ = make_pair()
    received(csms, encode_call("A1", "Heartbeat", {}))
    csms.reply_error("A1", InternalError("later"))
    assert received(csms, encode_call("A1", "Heartbeat", {})).call.message_id == "A1"


# -- replies matched by id -------------------------------------------------------------------


def test_call_error_fails_the_call_with_its_error_class() -> None:
    csms, charger = make_pair()
    pending, text = csms.send_call("Reset", {"type": "Soft"}, now=0)
    received(charger, text)
    error_text = charger.reply_error(pending.message_id, TypeConstraintViolation("bad", {"f": 1}))
    assert frame(error_text) == [4, "1", "TypeConstraintViolation", "bad", {"f": 1}]
    event = csms.receive(error_text, 1)
    assert isinstance(event, CallFailed)
    assert event.call == pending
    assert type(event.error) is TypeConstraintViolation
    assert (event.error.description, event.error.details) == ("bad", {"f": 1})
    assert not event.timed_out
    assert csms.outbound is None


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        ("NotImplemented", NotImplementedCall),
        ("NotSupported", NotSupported),
        ("FormationViolation", FormationViolation),
        ("FormatViolation", FormationViolation),
        ("OccurrenceConstraintViolation", OccurenceConstraintViolation),
        ("InternalError", InternalError),
    ],
)
def test_call_error_codes_rebuild_their_class(code: str, error_class: type[OcppError]) -> None:
    csms, _ = make_pair()
    csms.send_call("ClearCache", {}, now=0)
    event = csms.receive(encode_error("1", code, "desc"), 1)
    assert isinstance(event, CallFailed)
    assert type(event.error) is error_class


def test_invalid_call_result_payload_fails_the_call() -> None:
    csms, _ = make_pair()
    pending, _ = csms.send_call("Reset", {"type": "Soft"}, now=0)
    event = csms.receive(encode_result("1", {"status": "Perhaps"}), 1)
    assert isinstance(event, CallFailed)
    assert event.call == pending
    assert type(event.error) is PropertyConstraintViolation
    assert not event.timed_out
    assert csms.outbound is None


def test_call_result_missing_a_required_field_fails_the_call() -> None:
    _, charger = make_pair()
    charger.send_call("BootNotification", BOOT, now=0)
    event = charger.receive(encode_result("1", {"status": "Accepted"}), 1)
    assert isinstance(event, CallFailed)
    assert type(event.error) is OccurenceConstraintViolation


def test_reply_with_an_unknown_id_is_dropped_and_the_call_stays_pending() -> None:
    csms, _ = make_pair()
    pending, _ = csms.send_call("ClearCache", {}, now=0)
    assert csms.receive(encode_result("999", {"status": "Accepted"}), 1) == ReplyDropped(
        "999", "unknown"
    )
    assert csms.receive(encode_error("998", "GenericError", ""), 1) == ReplyDropped(
        "998", "unknown"
    )
    assert csms.outbound == pending
    assert csms.receive(encode_result("1", {"status": "Accepted"}), 2) == CallAnswered(
        pending, {"status": "Accepted"}
    )


def test_reply_when_nothing_is_pending_is_unknown() -> None:
    csms, _ = make_pair()
    assert csms.receive(encode_result("1", {}), 0) == ReplyDropped("1", "unknown")


def test_second_reply_to_an_answered_call_is_dropped() -> None:
    csms, _ = make_pair()
    csms.send_call("ClearCache", {}, now=0)
    assert isinstance(csms.receive(encode_result("1", {"status": "Accepted"}), 1), CallAnswered)
    assert csms.receive(encode_result("1", {"status": "Accepted"}), 2) == ReplyDropped(
        "1", "unknown"
    )


# -- timeouts --------------------------------------------------------------------------------


def test_expire_before_the_deadline_does_nothing() -> None:
    csms, _ = make_pair()
    pending, _ = csms.send_call("ClearCache", {}, now=100.0)
    assert csms.expire(100.0) is None
    assert csms.expire(100.0 + TIMEOUT - 0.001) is None
    assert csms.outbound == pending


def test_expire_at_the_deadline_fails_the_call() -> None:
    csms, _ = make_pair()
    pending, _ = csms.send_call("ClearCache", {}, now=100.0)
    event = csms.expire(100.0 + TIMEOUT)
    assert event is not None
    assert event.call == pending
    assert event.timed_out
    assert type(event.error) is ProtocolError
    assert "ClearCache" in event.error.description
    assert csms.outbound is None
    assert csms.next_deadline is None
    assert csms.expire(1000.0) is None  # nothing left to expire


def test_expire_with_nothing_pending() -> None:
    csms, _ = make_pair()
    assert csms.expire(1e9) is None


def test_late_reply_after_expiry_is_dropped_as_late() -> None:
    csms, charger = make_pair()
    pending, text = csms.send_call("ClearCache", {}, now=0)
    received(charger, text)
    assert csms.expire(TIMEOUT + 1) is not None
    late = charger.reply_result(pending.message_id, {"status": "Accepted"})
    assert csms.receive(late, TIMEOUT + 2) == ReplyDropped("1", "late")
    # A new call may go out after the timeout, and an old reply does not answer it.
    second, _ = csms.send_call("ClearCache", {}, now=TIMEOUT + 3)
    assert csms.receive(late, TIMEOUT + 4) == ReplyDropped("1", "late")
    assert csms.outbound == second


def test_late_call_error_after_expiry_is_dropped_as_late() -> None:
    csms, _ = make_pair()
    csms.send_call("ClearCache", {}, now=0)
    csms.expire(TIMEOUT)
    assert csms.receive(encode_error("1", "InternalError", ""), TIMEOUT + 1) == ReplyDropped(
        "1", "late"
    )


def test_send_call_deadline_uses_the_session_timeout() -> None:
    session = OcppSession("ocpp1.6", v16.CHARGER_ACTIONS, call_timeout=5.0)
    pending, _ = session.send_call("ClearCache", {}, now=7.0)
    assert pending.deadline == 12.0


# -- direction rules and invalid CALLs -------------------------------------------------------


def test_charger_sending_a_csms_action_is_not_supported() -> None:
    csms, _ = make_pair()
    event = rejected(csms, encode_call("9", "RemoteStartTransaction", {"idTag": "A"}))
    assert type(event.error) is NotSupported
    assert event.reply is not None
    assert frame(event.reply)[:3] == [4, "9", "NotSupported"]
    assert csms.inbound is None


def test_csms_sending_a_charger_action_is_not_supported() -> None:
    _, charger = make_pair()
    event = rejected(charger, encode_call("9", "BootNotification", BOOT))
    assert type(event.error) is NotSupported


def test_unknown_action_is_not_implemented() -> None:
    csms, _ = make_pair()
    event = rejected(csms, encode_call("9", "Foo", {}))
    assert type(event.error) is NotImplementedCall
    assert event.reply is not None
    assert frame(event.reply)[:3] == [4, "9", "NotImplemented"]
    assert csms.inbound is None


def test_data_transfer_goes_both_ways() -> None:
    csms, charger = make_pair()
    payload = {"vendorId": "com.example"}
    assert received(csms, encode_call("1", "DataTransfer", payload)).call.action == "DataTransfer"
    assert received(charger, encode_call("1", "DataTransfer", payload)).call.action == (
        "DataTransfer"
    )


def test_call_with_an_invalid_payload_is_answered_with_the_schema_error() -> None:
    csms, _ = make_pair()
    start = {
        "connectorId": "one",
        "idTag": "A",
        "meterStart": 0,
        "timestamp": "2026-01-05T08:00:00Z",
    }
    event = rejected(csms, encode_call("5", "StartTransaction", start))
    assert type(event.error) is TypeConstraintViolation
    assert event.reply is not None
    reply = frame(event.reply)
    assert reply[:3] == [4, "5", "TypeConstraintViolation"]
    assert reply[4]["rule"] == "type"
    assert csms.inbound is None  # a refused CALL is not in flight
    assert received(csms, encode_call("6", "Heartbeat", {})).call.message_id == "6"


def test_malformed_call_is_answered_with_unknown_id() -> None:
    csms, _ = make_pair()
    event = rejected(csms, "this is not json")
    assert isinstance(event.error, FormationViolation)  # RpcFrameworkError in 2.x
    assert event.reply is not None
    assert frame(event.reply)[:3] == [4, "-1", "FormationViolation"]


def test_call_with_non_object_payload_is_answered_with_its_id() -> None:
    csms, _ = make_pair()
    event = rejected(csms, '[2, "m7", "Heartbeat", []]')
    assert event.reply is not None
    assert frame(event.reply)[:3] == [4, "m7", "FormationViolation"]


def test_wrong_message_type_is_answered_as_protocol_error() -> None:
    csms, _ = make_pair()
    event = rejected(csms, '["2", "m7", "Heartbeat", {}]')
    assert event.reply is not None
    assert frame(event.reply)[:3] == [4, "m7", "ProtocolError"]


def test_malformed_reply_is_dropped_without_an_answer_and_the_call_stays_pending() -> None:
    csms, _ = make_pair()
    pending, _ = csms.send_call("ClearCache", {}, now=0)
    event = rejected(csms, '[3, "1", "not an object"]')
    assert event.reply is None
    assert csms.outbound == pending


def test_errors_use_the_session_versions_wire_spelling() -> None:
    session = OcppSession("ocpp2.0.1", ["Heartbeat"])
    event = rejected(session, '[2, "m1", "Heartbeat", []]')
    assert event.reply is not None
    assert frame(event.reply)[2] == "FormatViolation"
    unreadable = rejected(session, "{}")
    assert unreadable.reply is not None
    assert frame(unreadable.reply)[2] == "RpcFrameworkError"


def test_unsupported_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        OcppSession("ocpp1.5", v16.CHARGER_ACTIONS)


# -- answering the peer's CALL ---------------------------------------------------------------


def test_reply_result_validates_the_response_payload() -> None:
    csms, _ = make_pair()
    received(csms, encode_call("1", "BootNotification", BOOT))
    with pytest.raises(OccurenceConstraintViolation):
        csms.reply_result("1", {"status": "Accepted"})


def test_call_can_still_be_answered_with_an_error_after_an_invalid_result() -> None:
    # The runtime answers an OcppError from reply_result with reply_error for the same id;
    # the CALL must still be in flight for that.
    csms, charger = make_pair()
    pending, text = charger.send_call("BootNotification", BOOT, now=0)
    received(csms, text)
    with pytest.raises(PropertyConstraintViolation):
        csms.reply_result("1", {"status": "Maybe", "currentTime": "x", "interval": 1})
    assert csms.inbound is not None
    error_text = csms.reply_error("1", InternalError("could not answer"))
    assert csms.inbound is None
    event = charger.receive(error_text, 1)
    assert isinstance(event, CallFailed)
    assert event.call == pending
    assert type(event.error) is InternalError


def test_reply_without_validation_sends_anything() -> None:
    csms, _ = make_pair(validate_outgoing=False)
    received(csms, encode_call("1", "Heartbeat", {}))
    assert frame(csms.reply_result("1", {"x": 1})) == [3, "1", {"x": 1}]


def test_reply_to_a_call_not_in_flight_raises_no_such_call() -> None:
    csms, _ = make_pair()
    with pytest.raises(NoSuchCall):
        csms.reply_result("1", {})
    received(csms, encode_call("1", "Heartbeat", {}))
    with pytest.raises(NoSuchCall):
        csms.reply_result("2", {"currentTime": "2026-01-05T08:00:00Z"})
    with pytest.raises(NoSuchCall):
        csms.reply_error("2", InternalError())
    csms.reply_result("1", {"currentTime": "2026-01-05T08:00:00Z"})
    with pytest.raises(NoSuchCall):  # answered once only
        csms.reply_result("1", {"currentTime": "2026-01-05T08:00:00Z"})


def test_reply_error_writes_the_error() -> None:
    csms, _ = make_pair()
    received(csms, encode_call("x", "Heartbeat", {}))
    text = csms.reply_error("x", OccurenceConstraintViolation("missing", {"field": "a"}))
    assert frame(text) == [4, "x", "OccurenceConstraintViolation", "missing", {"field": "a"}]


# -- connection lost -------------------------------------------------------------------------


def test_connection_lost_forgets_everything_in_flight() -> None:
    csms, _ = make_pair()
    received(csms, encode_call("in", "Heartbeat", {}))
    pending, _ = csms.send_call("ClearCache", {}, now=0)
    assert csms.connection_lost() == pending
    assert csms.inbound is None
    assert csms.outbound is None
    assert csms.next_deadline is None
    assert csms.expire(1e9) is None
    with pytest.raises(NoSuchCall):
        csms.reply_result("in", {"currentTime": "2026-01-05T08:00:00Z"})
    # A reply to the lost call is unknown, and new calls go both ways.
    assert csms.receive(encode_result(pending.message_id, {"status": "Accepted"}), 1) == (
        ReplyDropped(pending.message_id, "unknown")
    )
    csms.send_call("ClearCache", {}, now=2)
    received(csms, encode_call("in", "Heartbeat", {}))


def test_connection_lost_with_nothing_in_flight() -> None:
    csms, _ = make_pair()
    assert csms.connection_lost() is None
