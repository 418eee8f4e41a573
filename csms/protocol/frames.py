"""OCPP-J frames: the three RPC message shapes, parsed from and written to JSON text.

CALL `[2, id, action, payload]`, CALLRESULT `[3, id, payload]`,
CALLERROR `[4, id, code, description, details]`. Parsing checks the frame's shape and the
message id rules; payload validation against the schemas is `schemas`' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from csms.protocol.errors import (
    FormationViolation,
    MessageTypeNotSupported,
    OcppError,
    ProtocolError,
    RpcFrameworkError,
)

MAX_MESSAGE_ID_LENGTH = 36
#: The id answered when a frame is so broken that its own id cannot be read.
UNKNOWN_MESSAGE_ID = "-1"


class MessageType(IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = Call | CallResult | CallError


class MalformedFrame(Exception):
    """A frame that breaks OCPP-J framing.

    `message_id` is the id to answer with (`UNKNOWN_MESSAGE_ID` when unreadable);
    `answerable` is False for broken replies, which the spec says to drop, not answer.
    """

    def __init__(self, error: OcppError, message_id: str, *, answerable: bool = True) -> None:
        super().__init__(error.description)
        self.error = error
        self.message_id = message_id
        self.answerable = answerable


def parse_frame(text: str | bytes) -> Frame:
    """Parse one WebSocket text message into a frame, or raise `MalformedFrame`."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedFrame(
            RpcFrameworkError(f"message is not valid JSON: {exc}"), UNKNOWN_MESSAGE_ID
        ) from None
    if not isinstance(message, list) or len(message) < 3:
        # A short reply is dropped like any broken reply; anything else is answered.
        is_reply = isinstance(message, list) and bool(message) and message[0] in (3, 4)
        raise MalformedFrame(
            RpcFrameworkError("message is not a JSON array of at least 3 elements"),
            UNKNOWN_MESSAGE_ID,
            answerable=not is_reply,
        )
    type_id, message_id = message[0], message[1]
    if not isinstance(message_id, str) or not message_id:
        raise MalformedFrame(
            RpcFrameworkError("message id must be a non-empty string"), UNKNOWN_MESSAGE_ID
        )
    if type(type_id) is not int or type_id not in (2, 3, 4):
        # 2.1's SEND (6) and CALLRESULTERROR (5) are never answered; the session decides.
        raise MalformedFrame(
            MessageTypeNotSupported(
                f"unsupported MessageTypeId {type_id!r}",
                {"messageTypeId": type_id} if type(type_id) is int else {},
            ),
            message_id,
        )
    is_call = type_id == MessageType.CALL
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise MalformedFrame(
            ProtocolError(f"message id longer than {MAX_MESSAGE_ID_LENGTH} characters"),
            message_id,
            answerable=is_call,
        )
    if is_call:
        return _parse_call(message, message_id)
    if type_id == MessageType.CALLRESULT:
        if len(message) != 3 or not isinstance(message[2], dict):
            raise MalformedFrame(
                FormationViolation("CALLRESULT must be [3, id, {payload}]"),
                message_id,
                answerable=False,
            )
        return CallResult(message_id, message[2])
    if (
        len(message) != 5
        or not isinstance(message[2], str)
        or not isinstance(message[3], str)
        or not isinstance(message[4], dict)
    ):
        raise MalformedFrame(
            FormationViolation("CALLERROR must be [4, id, code, description, {details}]"),
            message_id,
            answerable=False,
        )
    return CallError(message_id, message[2], message[3], message[4])


def _parse_call(message: list[Any], message_id: str) -> Call:
    if len(message) != 4:
        raise MalformedFrame(
            RpcFrameworkError("CALL must be [2, id, action, {payload}]"), message_id
        )
    action, payload = message[2], message[3]
    if not isinstance(action, str) or not action:
        raise MalformedFrame(RpcFrameworkError("action must be a non-empty string"), message_id)
    if not isinstance(payload, dict):
        raise MalformedFrame(FormationViolation("payload must be a JSON object"), message_id)
    return Call(message_id, action, payload)


def encode_call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([2, message_id, action, payload]).decode()


def encode_result(message_id: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([3, message_id, payload]).decode()


def encode_error(
    message_id: str, code: str, description: str, details: dict[str, Any] | None = None
) -> str:
    return orjson.dumps([4, message_id, code, description, details or {}]).decode()
