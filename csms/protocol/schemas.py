"""Payload validation against the JSON schemas that the `ocpp` package ships.

Validators are compiled with fastjsonschema once per (version, action, direction), lazily,
and cached. A schema violation becomes the OCPP error that names its kind.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable
from typing import Any

import fastjsonschema
import orjson

from csms.protocol.errors import (
    FormationViolation,
    NotImplementedCall,
    OccurenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    TypeConstraintViolation,
)

SUPPORTED_VERSIONS = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")
_SCHEMA_PACKAGES = {"ocpp1.6": "v16", "ocpp2.0.1": "v201", "ocpp2.1": "v21"}

#: Which OCPP error each JSON-schema keyword's violation is answered with.
_RULE_ERRORS: dict[str, type[OcppError]] = {
    "type": TypeConstraintViolation,
    "required": OccurenceConstraintViolation,
    "minItems": OccurenceConstraintViolation,
    "maxItems": OccurenceConstraintViolation,
    "additionalProperties": FormationViolation,
    "enum": PropertyConstraintViolation,
    "maxLength": PropertyConstraintViolation,
    "minLength": PropertyConstraintViolation,
    "format": PropertyConstraintViolation,
    "minimum": PropertyConstraintViolation,
    "maximum": PropertyConstraintViolation,
    "multipleOf": PropertyConstraintViolation,
    "pattern": PropertyConstraintViolation,
}

Validator = Callable[[Any], Any]


def _schema_dir(version: str) -> importlib.resources.abc.Traversable:
    package = _SCHEMA_PACKAGES.get(version)
    if package is None:
        raise ValueError(f"unsupported OCPP version {version!r}")
    return importlib.resources.files("ocpp").joinpath(package, "schemas")


@functools.cache
def _schema_files(version: str) -> dict[tuple[str, bool], str]:
    """Map (action, is_response) to the schema file name, for either naming scheme."""
    files: dict[tuple[str, bool], str] = {}
    for entry in _schema_dir(version).iterdir():
        name = entry.name
        if not name.endswith(".json"):
            continue
        stem = name[: -len(".json")]
        if stem.endswith("Response"):
            files[(stem[: -len("Response")], True)] = name
        elif stem.endswith("Request"):
            files[(stem[: -len("Request")], False)] = name
        else:
            files[(stem, False)] = name
    return files


@functools.cache
def actions(version: str) -> frozenset[str]:
    """Every action that has a request schema in this version."""
    return frozenset(action for action, is_response in _schema_files(version) if not is_response)


@functools.cache
def _validator(version: str, action: str, is_response: bool) -> Validator:
    name = _schema_files(version).get((action, is_response))
    if name is None:
        raise NotImplementedCall(f"{action} is not an action of {version}")
    schema = orjson.loads(_schema_dir(version).joinpath(name).read_bytes())
    schema.pop("$id", None)
    validator: Validator = fastjsonschema.compile(schema)
    return validator


def _check(version: str, action: str, is_response: bool, payload: dict[str, Any]) -> None:
    validate = _validator(version, action, is_response)
    try:
        validate(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        error_class = _RULE_ERRORS.get(str(exc.rule), FormationViolation)
        kind = "response" if is_response else "request"
        raise error_class(
            f"{action} {kind}: {exc.message}", {"field": str(exc.name), "rule": str(exc.rule)}
        ) from None


def validate_request(version: str, action: str, payload: dict[str, Any]) -> None:
    """Raise the OCPP error for a request payload that breaks its schema."""
    _check(version, action, False, payload)


def validate_response(version: str, action: str, payload: dict[str, Any]) -> None:
    """Raise the OCPP error for a response payload that breaks its schema."""
    _check(version, action, True, payload)
