"""OCPP-J CALLERROR codes as exceptions, with each version's wire spelling.

The core raises these; one place (`OcppSession`) turns them into CALLERROR frames. 1.6 and
2.x spell two codes differently (`FormationViolation`/`FormatViolation`,
`OccurenceConstraintViolation`/`OccurrenceConstraintViolation`), and 2.x has two codes of its
own (`RpcFrameworkError`, `MessageTypeNotSupported`) that 1.6 answers with its nearest code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OcppError(Exception):
    """An error that is answered to the peer as a CALLERROR.

    `wire_codes` maps an OCPP version to the code written on the wire; `code_for`
    falls back to `code` (the 1.6 spelling, except for the 2.x-only codes).
    """

    code: ClassVar[str] = "GenericError"
    wire_codes: ClassVar[dict[str, str]] = {}

    def __init__(self, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description or self.code
        self.details: dict[str, Any] = details or {}

    @classmethod
    def code_for(cls, version: str) -> str:
        return cls.wire_codes.get(version, cls.code)


class FormationViolation(OcppError):
    code = "FormationViolation"
    wire_codes: ClassVar[dict[str, str]] = {
        "ocpp2.0.1": "FormatViolation",
        "ocpp2.1": "FormatViolation",
    }


class OccurenceConstraintViolation(OcppError):
    code = "OccurenceConstraintViolation"
    wire_codes: ClassVar[dict[str, str]] = {
        "ocpp2.0.1": "OccurrenceConstraintViolation",
        "ocpp2.1": "OccurrenceConstraintViolation",
    }


class RpcFrameworkError(FormationViolation):
    """Not a valid RPC message at all (not JSON, not an array, no readable message id).

    1.6 has no such code: it answers `FormationViolation`, as it always did.
    """

    code = "RpcFrameworkError"
    wire_codes: ClassVar[dict[str, str]] = {"ocpp1.6": "FormationViolation"}


class TypeConstraintViolation(OcppError):
    code = "TypeConstraintViolation"


class PropertyConstraintViolation(OcppError):
    code = "PropertyConstraintViolation"


class ProtocolError(OcppError):
    code = "ProtocolError"


class MessageTypeNotSupported(ProtocolError):
    """A MessageTypeId this implementation does not know (1.6 answers `ProtocolError`)."""

    code = "MessageTypeNotSupported"
    wire_codes: ClassVar[dict[str, str]] = {"ocpp1.6": "ProtocolError"}


class NotImplementedCall(OcppError):
    """The action is unknown to this implementation (`NotImplemented` on the wire)."""

    code = "NotImplemented"


class NotSupported(OcppError):
    code = "NotSupported"


class SecurityError(OcppError):
    code = "SecurityError"


class InternalError(OcppError):
    code = "InternalError"


class GenericError(OcppError):
    code = "GenericError"


ERROR_CLASSES: dict[str, type[OcppError]] = {
    cls.code: cls
    for cls in (
        FormationViolation,
        RpcFrameworkError,
        OccurenceConstraintViolation,
        TypeConstraintViolation,
        PropertyConstraintViolation,
        ProtocolError,
        MessageTypeNotSupported,
        NotImplementedCall,
        NotSupported,
        SecurityError,
        InternalError,
        GenericError,
    )
}
for _cls in list(ERROR_CLASSES.values()):
    for _spelling in _cls.wire_codes.values():
        ERROR_CLASSES.setdefault(_spelling, _cls)


def error_from_code(code: str, description: str, details: dict[str, Any]) -> OcppError:
    """Rebuild the exception a peer's CALLERROR names; unknown codes become GenericError."""
    return ERROR_CLASSES.get(code, GenericError)(description, details)
