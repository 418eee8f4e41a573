"""OCPP security profiles at the handshake: the TLS context, and who may connect how.

- 0: no authentication, plain ws:// (the default; unknown ids are treated as profile 0, and
  the unknown-station policy decides at their boot).
- 1: HTTP Basic over ws://.  2: HTTP Basic over TLS.  3: a client certificate over TLS.

A station is refused on any transport or credentials but its own profile's: a profile-2
station on ws:// is refused even with its password, a profile-0 (or unknown) id sending
credentials or connecting over TLS is refused, since there is nothing to check them against.
The Basic username must be the charge point id; for profile 3 the certificate must chain to
the configured CA, with O the operator name and CN exactly the charge point id.
"""

from __future__ import annotations

import binascii
import ssl
from dataclasses import dataclass
from typing import Any

import trio

from csms.config import ConfigError, Settings
from csms.domain.credentials import verify_password
from csms.storage.sqlite_credentials import StationSecurity

# A few scrypt checks at once at most: each takes 16 MiB and a core for tens of ms.
_HASHING = trio.CapacityLimiter(4)


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The server's TLS context (TLS 1.2 or newer; client certificates verified against the
    CA file when one is configured, and required only of profile-3 stations)."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        raise ConfigError("ocpp_tls_port needs tls_cert_file and tls_key_file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        if settings.tls_client_ca_file is not None:
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files: {exc}") from None
    return context


@dataclass(frozen=True, slots=True)
class Transport:
    """What the connection itself says about the client."""

    tls: bool
    #: The verified client certificate (`SSLObject.getpeercert()`), if one was presented.
    peer_cert: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the handshake's authentication came to."""

    #: Why the client may not connect (for the log); None if it may.
    refused: str | None = None
    #: The pending password's hash, when the station logged in with its rotated password:
    #: that password now replaces the old one.
    rotated_to: str | None = None


async def authenticate(
    station_id: str,
    security: StationSecurity | None,
    transport: Transport,
    authorization: bytes | None,
    operator_name: str | None,
) -> Verdict:
    """Whether the client may connect as `station_id`, and if not, why not."""
    profile = security.profile if security is not None else 0
    if transport.tls != (profile >= 2):
        where = "TLS" if transport.tls else "plain ws"
        known = "unknown station" if security is None else f"profile {profile} station"
        return Verdict(f"{known} connected over {where}")
    if profile == 0:
        return Verdict(None if authorization is None else "credentials sent by a profile 0 station")
    if profile == 3:
        return Verdict(_check_certificate(station_id, transport.peer_cert, operator_name))
    assert security is not None
    password = _basic_password(station_id, authorization)
    if isinstance(password, str):
        return Verdict(password)
    if security.password_hash is None and security.pending_password_hash is None:
        return Verdict("no password is registered for this station")
    if security.password_hash is not None and await _matches(password, security.password_hash):
        return Verdict()
    pending = security.pending_password_hash
    if pending is not None and await _matches(password, pending):
        return Verdict(rotated_to=pending)
    return Verdict("wrong password")


async def _matches(password: bytes, stored: str) -> bool:
    return await trio.to_thread.run_sync(verify_password, password, stored, limiter=_HASHING)


def _basic_password(station_id: str, authorization: bytes | None) -> bytes | str:
    """The password of a Basic header for `station_id`, or why there is none (a str)."""
    if authorization is None:
        return "no Authorization header"
    scheme, _, encoded = authorization.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return "Authorization is not Basic"
    try:
        decoded = binascii.a2b_base64(encoded.strip(), strict_mode=True)
    except binascii.Error:
        return "Authorization is not valid base64"
    # Ids may contain ':', so the username is matched as a prefix rather than split off.
    prefix = station_id.encode() + b":"
    if not decoded.startswith(prefix):
        return "the Basic username is not the charge point id"
    return decoded[len(prefix) :]


def _check_certificate(
    station_id: str, cert: dict[str, Any] | None, operator_name: str | None
) -> str | None:
    if not cert:
        return "no client certificate"
    if operator_name is None:
        return "operator_name is not configured, so no certificate can be checked"
    names: dict[str, list[str]] = {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            names.setdefault(key, []).append(value)
    if names.get("organizationName") != [operator_name]:
        return "the certificate's O is not the operator name"
    if names.get("commonName") != [station_id]:
        return "the certificate's CN is not the charge point id"
    return None
