"""Rotating a profile 1/2 station's Basic-auth password over OCPP: the passwords a version
can carry, the command that sets one, and what counts as the station taking it.

- 1.6 (security whitepaper): ChangeConfiguration of `AuthorizationKey`, whose value is the
  password hex-encoded in at most 40 hex digits, so at most 20 bytes of password.
- 2.0.1 and 2.1: SetVariables of `SecurityCtrlr.BasicAuthPassword`, the password as it is.

The rotation itself (`csms.runtime.password_rotation`): the new password's hash is recorded
as pending *before* the command is sent, so a station that takes the password and reconnects
at once is let in; the old password stays valid until the station has logged in with the
new one, and a station that refuses it leaves only the old one.
"""

from __future__ import annotations

import secrets
from typing import Any

from csms.domain.credentials import BadPassword, generate_password, validate_password

#: 1.6 AuthorizationKey: 40 hex digits at most.
V16_MAX_PASSWORD_BYTES = 20
_TAKEN = frozenset({"Accepted", "RebootRequired"})
_COMPONENT, _VARIABLE = "SecurityCtrlr", "BasicAuthPassword"


def new_password(version: str) -> str:
    """A random password the version can carry (1.6: 20 characters; 2.x: 32)."""
    if version == "ocpp1.6":
        return secrets.token_urlsafe(15)
    return generate_password()


def check_password(version: str, password: str) -> str:
    """The password if the version can carry it; BadPassword saying why not (not what)."""
    validate_password(password)
    if version == "ocpp1.6" and len(password.encode()) > V16_MAX_PASSWORD_BYTES:
        raise BadPassword(
            f"an OCPP 1.6 AuthorizationKey holds at most {V16_MAX_PASSWORD_BYTES} characters "
            f"(this password has {len(password)})"
        )
    return password


def rotation_command(version: str, password: str) -> tuple[str, dict[str, Any]]:
    """The CSMS-initiated call that gives the station its new password."""
    if version == "ocpp1.6":
        return "ChangeConfiguration", {
            "key": "AuthorizationKey",
            "value": password.encode().hex().upper(),
        }
    return "SetVariables", {
        "setVariableData": [
            {
                "component": {"name": _COMPONENT},
                "variable": {"name": _VARIABLE},
                "attributeValue": password,
            }
        ]
    }


def station_took_it(version: str, response: dict[str, Any]) -> str | None:
    """None if the station's answer says it took the password; else the status it gave."""
    if version == "ocpp1.6":
        status = str(response.get("status"))
        return None if status in _TAKEN else status
    for result in response.get("setVariableResult", ()):
        if (
            result.get("component", {}).get("name") == _COMPONENT
            and result.get("variable", {}).get("name") == _VARIABLE
        ):
            status = str(result.get("attributeStatus"))
            return None if status in _TAKEN else status
    return "no result for SecurityCtrlr.BasicAuthPassword"
