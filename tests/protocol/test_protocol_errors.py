"""CALLERROR codes: one exception class per code, each version's wire spelling."""

from __future__ import annotations

import pytest

from csms.protocol.errors import (
    ERROR_CLASSES,
    FormationViolation,
    GenericError,
    InternalError,
    NotImplementedCall,
    NotSupported,
    OccurenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    ProtocolError,
    SecurityError,
    TypeConstraintViolation,
    error_from_code,
)

ALL_CLASSES: list[type[OcppError]] = [
    FormationViolation,
    OccurenceConstraintViolation,
    TypeConstraintViolation,
    PropertyConstraintViolation,
    ProtocolError,
    NotImplementedCall,
    NotSupported,
    SecurityError,
    InternalError,
    GenericError,
]


def test_ocpp16_wire_spellings() -> None:
    assert FormationViolation.code_for("ocpp1.6") == "FormationViolation"
    assert OccurenceConstraintViolation.code_for("ocpp1.6") == "OccurenceConstraintViolation"


@pytest.mark.parametrize("version", ["ocpp2.0.1", "ocpp2.1"])
def test_ocpp2_wire_spellings(version: str) -> None:
    assert FormationViolation.code_for(version) == "FormatViolation"
    assert OccurenceConstraintViolation.code_for(version) == "OccurrenceConstraintViolation"


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (TypeConstraintViolation, "TypeConstraintViolation"),
        (PropertyConstraintViolation, "PropertyConstraintViolation"),
        (ProtocolError, "ProtocolError"),
        (NotImplementedCall, "NotImplemented"),
        (NotSupported, "NotSupported"),
        (SecurityError, "SecurityError"),
        (InternalError, "InternalError"),
        (GenericError, "GenericError"),
    ],
)
@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
def test_codes_spelled_alike_in_every_version(
    cls: type[OcppError], code: str, version: str
) -> None:
    assert cls.code == code
    assert cls.code_for(version) == code


def test_unknown_version_falls_back_to_16_spelling() -> None:
    assert FormationViolation.code_for("ocpp9") == "FormationViolation"


def test_error_carries_description_and_details() -> None:
    error = TypeConstraintViolation("connectorId must be integer", {"field": "connectorId"})
    assert error.description == "connectorId must be integer"
    assert str(error) == "connectorId must be integer"
    assert error.details == {"field": "connectorId"}


def test_error_description_defaults_to_code_and_details_to_empty() -> None:
    error = NotSupported()
    assert error.description == "NotSupported"
    assert error.details == {}
    assert error.details is not NotSupported().details  # no shared mutable default


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_error_from_code_round_trip(cls: type[OcppError]) -> None:
    for version in ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"):
        rebuilt = error_from_code(cls.code_for(version), "why", {"k": 1})
        assert type(rebuilt) is cls
        assert rebuilt.description == "why"
        assert rebuilt.details == {"k": 1}


def test_both_spellings_map_to_the_same_class() -> None:
    assert ERROR_CLASSES["FormatViolation"] is FormationViolation
    assert ERROR_CLASSES["FormationViolation"] is FormationViolation
    assert ERROR_CLASSES["OccurrenceConstraintViolation"] is OccurenceConstraintViolation
    assert ERROR_CLASSES["OccurenceConstraintViolation"] is OccurenceConstraintViolation


@pytest.mark.parametrize(
    "code", ["NoSuchCode", "", "formationviolation", "messagetypenotsupported"]
)
def test_unknown_code_becomes_generic_error(code: str) -> None:
    rebuilt = error_from_code(code, "d", {})
    assert type(rebuilt) is GenericError
    assert rebuilt.description == "d"


def test_every_error_is_an_exception_subclass_of_ocpp_error() -> None:
    for cls in ALL_CLASSES:
        assert issubclass(cls, OcppError)
        with pytest.raises(OcppError):
            raise cls("x")
