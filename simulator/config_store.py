"""The virtual charger's OCPP 1.6 configuration store: the standard keys with their types,
read-only flags and defaults, and the ChangeConfiguration / GetConfiguration rules.

Values are kept as the strings OCPP carries and parsed on read. The charger subscribes to
changes, so that a key changes behaviour at once (a new HeartbeatInterval re-times the next
heartbeat, a new MeterValueSampleInterval the next sample, and so on).

`AuthorizationKey` (the security whitepaper's Basic-auth password, hex-encoded) is
write-only: GetConfiguration lists it without its value.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from csms.domain.credentials import BadPassword
from csms.domain.password_rotation import check_password

Kind = Literal["int", "bool", "csl", "str", "hexpassword"]

#: Measurands this charger can sample (its meter and the EV's reported state of charge).
SUPPORTED_MEASURANDS = frozenset(
    {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Power.Offered",
        "Current.Import",
        "Current.Offered",
        "Voltage",
        "SoC",
    }
)
FEATURE_PROFILES = (
    "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"
)
MAX_VALUE_LENGTH = 500  # CiString500, the value's type in GetConfiguration.conf


class ConfigurationStatus(StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A configuration key: its value type, default and whether it can be changed.

    `allowed` limits the items of a comma-separated list; `minimum` an integer;
    `max_items_key` names the read-only key that bounds a list's length; a `writeonly` key's
    value is never read back over OCPP.
    """

    name: str
    kind: Kind
    default: str
    readonly: bool = False
    reboot_required: bool = False
    minimum: int = 0
    allowed: frozenset[str] | None = None
    max_items_key: str | None = None
    writeonly: bool = False


def _measurand_list(name: str, default: str) -> tuple[KeySpec, KeySpec]:
    """A list of measurands the charger samples, and its read-only maximum length."""
    limit = f"{name}MaxLength"
    return (
        KeySpec(name, "csl", default, allowed=SUPPORTED_MEASURANDS, max_items_key=limit),
        KeySpec(limit, "int", str(len(SUPPORTED_MEASURANDS)), readonly=True),
    )


def _specs(number_of_connectors: int) -> list[KeySpec]:
    return [
        # -- Core ---------------------------------------------------------------------------
        KeySpec("AllowOfflineTxForUnknownId", "bool", "false"),
        KeySpec("AuthorizationCacheEnabled", "bool", "true"),
        KeySpec("AuthorizeRemoteTxRequests", "bool", "false"),
        KeySpec("ClockAlignedDataInterval", "int", "0"),
        KeySpec("ConnectionTimeOut", "int", "60", minimum=1),
        KeySpec("ConnectorPhaseRotation", "csl", "NotApplicable"),
        KeySpec("GetConfigurationMaxKeys", "int", "64", readonly=True),
        KeySpec("HeartbeatInterval", "int", "300"),
        KeySpec("LocalAuthorizeOffline", "bool", "true"),
        KeySpec("LocalPreAuthorize", "bool", "false"),
        *_measurand_list("MeterValuesAlignedData", "Energy.Active.Import.Register"),
        *_measurand_list(
            "MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import,SoC"
        ),
        KeySpec("MeterValueSampleInterval", "int", "60"),
        KeySpec("NumberOfConnectors", "int", str(number_of_connectors), readonly=True),
        KeySpec("ResetRetries", "int", "3"),
        KeySpec("StopTransactionOnEVSideDisconnect", "bool", "true"),
        KeySpec("StopTransactionOnInvalidId", "bool", "true"),
        *_measurand_list("StopTxnAlignedData", ""),
        *_measurand_list("StopTxnSampledData", "Energy.Active.Import.Register"),
        KeySpec("SupportedFeatureProfiles", "csl", FEATURE_PROFILES, readonly=True),
        KeySpec("SupportedFileTransferProtocols", "csl", "HTTP,HTTPS", readonly=True),
        KeySpec("TransactionMessageAttempts", "int", "3", minimum=1),
        KeySpec("TransactionMessageRetryInterval", "int", "60"),
        KeySpec("UnlockConnectorOnEVSideDisconnect", "bool", "true"),
        # A new ping interval takes a new WebSocket connection: it applies after a reboot.
        KeySpec("WebSocketPingInterval", "int", "0", reboot_required=True),
        # -- Security whitepaper: the password this charger logs in with, hex-encoded -------
        KeySpec("AuthorizationKey", "hexpassword", "", writeonly=True),
        # -- Local Auth List Management ------------------------------------------------------
        KeySpec("LocalAuthListEnabled", "bool", "true"),
        KeySpec("LocalAuthListMaxLength", "int", "1000", readonly=True),
        KeySpec("SendLocalListMaxLength", "int", "200", readonly=True),
        # -- Reservation ---------------------------------------------------------------------
        KeySpec("ReserveConnectorZeroSupported", "bool", "false", readonly=True),
        # -- Smart Charging ------------------------------------------------------------------
        KeySpec("ChargeProfileMaxStackLevel", "int", "10", readonly=True),
        KeySpec("ChargingScheduleAllowedChargingRateUnit", "csl", "Current,Power", readonly=True),
        KeySpec("ChargingScheduleMaxPeriods", "int", "24", readonly=True),
        KeySpec("ConnectorSwitch3to1PhaseSupported", "bool", "false", readonly=True),
        KeySpec("MaxChargingProfilesInstalled", "int", "20", readonly=True),
    ]


@functools.cache
def _specs_by_name(number_of_connectors: int) -> dict[str, KeySpec]:
    """The key specs by lower-case name, shared by every charger with as many connectors."""
    return {spec.name.lower(): spec for spec in _specs(number_of_connectors)}


Listener = Callable[[str, str], None]


class ConfigStore:
    """The keys of one charger. Key names match case-insensitively (they are CiStrings)."""

    __slots__ = (
        "_listeners",
        "_specs",
        "_values",
    )

    def __init__(
        self, number_of_connectors: int, overrides: dict[str, str | int | bool] | None = None
    ) -> None:
        self._specs = _specs_by_name(number_of_connectors)
        #: Only the keys that differ from their defaults: a fleet holds thousands of stores.
        self._values: dict[str, str] = {}
        self._listeners: list[Listener] = []
        for key, value in (overrides or {}).items():
            spec = self._spec(key)
            if spec is None:
                raise KeyError(f"unknown configuration key {key!r}")
            text = _text(value)
            if self._parse(spec, text) is None:
                raise ValueError(f"bad value {value!r} for {spec.name}")
            self._values[spec.name] = text

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(key, value)` after every accepted change (`set` included)."""
        self._listeners.append(listener)

    # -- typed reads -------------------------------------------------------------------

    def get(self, key: str) -> str:
        spec = self._spec(key)
        if spec is None:
            raise KeyError(key)
        return self._values.get(spec.name, spec.default)

    def get_int(self, key: str) -> int:
        return int(self.get(key))

    def get_bool(self, key: str) -> bool:
        return self.get(key).lower() == "true"

    def get_list(self, key: str) -> list[str]:
        return [item for item in (i.strip() for i in self.get(key).split(",")) if item]

    def set(self, key: str, value: str | int | bool) -> None:
        """Set a key from the charger itself (read-only keys included): no OCPP rules."""
        spec = self._spec(key)
        if spec is None:
            raise KeyError(key)
        self._store(spec, _text(value))

    # -- OCPP ----------------------------------------------------------------------------

    def change(self, key: str, value: str) -> ConfigurationStatus:
        """ChangeConfiguration: Accepted, Rejected (read-only or a bad value), RebootRequired
        (accepted, applies after a reboot) or NotSupported (an unknown key)."""
        spec = self._spec(key)
        if spec is None:
            return ConfigurationStatus.NOT_SUPPORTED
        if spec.readonly:
            return ConfigurationStatus.REJECTED
        parsed = self._parse(spec, value)
        if parsed is None:
            return ConfigurationStatus.REJECTED
        self._store(spec, parsed)
        if spec.reboot_required:
            return ConfigurationStatus.REBOOT_REQUIRED
        return ConfigurationStatus.ACCEPTED

    def get_configuration(self, keys: Iterable[str] | None = None) -> dict[str, Any]:
        """GetConfiguration.conf: `configurationKey` (known) and `unknownKey` (the rest)."""
        wanted = list(keys or [])
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        if not wanted:
            specs = list(self._specs.values())
        else:
            specs = []
            for key in wanted:
                spec = self._spec(key)
                if spec is None:
                    unknown.append(key)
                elif spec not in specs:
                    specs.append(spec)
        for spec in specs:
            entry: dict[str, Any] = {"key": spec.name, "readonly": spec.readonly}
            if not spec.writeonly:
                entry["value"] = self._values.get(spec.name, spec.default)
            known.append(entry)
        result: dict[str, Any] = {}
        if known:
            result["configurationKey"] = known
        if unknown:
            result["unknownKey"] = unknown
        return result

    # -- helpers -----------------------------------------------------------------------

    def _spec(self, key: str) -> KeySpec | None:
        return self._specs.get(key.lower())

    def _store(self, spec: KeySpec, text: str) -> None:
        self._values[spec.name] = text
        for listener in self._listeners:
            listener(spec.name, text)

    def _parse(self, spec: KeySpec, value: str) -> str | None:
        """The value in its canonical spelling, or None if it is not valid for the key."""
        text = value.strip()
        if len(text) > MAX_VALUE_LENGTH:
            return None
        if spec.kind == "int":
            try:
                number = int(text)
            except ValueError:
                return None
            return str(number) if number >= spec.minimum else None
        if spec.kind == "bool":
            lowered = text.lower()
            return lowered if lowered in ("true", "false") else None
        if spec.kind == "csl":
            items = [item.strip() for item in text.split(",") if item.strip()]
            if spec.allowed is not None and any(item not in spec.allowed for item in items):
                return None
            if spec.max_items_key is not None and len(items) > self.get_int(spec.max_items_key):
                return None
            return ",".join(items)
        if spec.kind == "hexpassword":
            return text.upper() if password_of_key(text) is not None else None
        return text


def password_of_key(value: str) -> str | None:
    """The password an OCPP 1.6 AuthorizationKey value carries (hex digits of at most 20
    bytes of a valid password), or None if it carries none."""
    if not all(c in string.hexdigits for c in value):  # fromhex would skip spaces
        return None
    try:
        password = bytes.fromhex(value).decode("ascii")
        return check_password("ocpp1.6", password)
    except (ValueError, BadPassword):  # not hex, not ASCII (UnicodeDecodeError), a bad one
        return None


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
