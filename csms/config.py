"""Configuration: defaults, then a TOML file (`--config`), then `CSMS_*` environment variables.

TOML sections map onto flat settings: `[stations] unknown = "accept"` is `unknown_stations`,
`[ocpp] port = 9000` is `ocpp_port`, `[database] url = ...` is `database_url`, and so on.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from csms.domain.billing import BillingRules
from csms.domain.ledger import UnknownStationPolicy

#: TOML (section, key) -> setting name.
_TOML_KEYS: dict[tuple[str, str], str] = {
    ("database", "url"): "database_url",
    ("ocpp", "host"): "ocpp_host",
    ("ocpp", "port"): "ocpp_port",
    ("ocpp", "heartbeat_interval"): "heartbeat_interval",
    ("ocpp", "call_timeout"): "call_timeout",
    ("ocpp", "ping_interval"): "ping_interval",
    ("ocpp", "ping_timeout"): "ping_timeout",
    ("ocpp", "max_message_size"): "max_message_size",
    ("ocpp", "validate_responses"): "validate_responses",
    ("ocpp", "tls_port"): "ocpp_tls_port",
    ("ocpp", "handshake_timeout"): "handshake_timeout",
    ("ocpp", "max_connections"): "max_connections",
    ("ocpp", "max_handshakes"): "max_handshakes",
    ("ocpp", "max_messages_per_second"): "max_messages_per_second",
    ("ocpp", "message_burst"): "message_burst",
    ("security", "tls_cert_file"): "tls_cert_file",
    ("security", "tls_key_file"): "tls_key_file",
    ("security", "tls_client_ca_file"): "tls_client_ca_file",
    ("security", "operator_name"): "operator_name",
    ("security", "max_failures_per_station"): "auth_max_failures_per_station",
    ("security", "max_failures_per_address"): "auth_max_failures_per_address",
    ("security", "failure_window"): "auth_failure_window",
    ("api", "host"): "api_host",
    ("api", "port"): "api_port",
    ("api", "files_dir"): "api_files_dir",
    ("stations", "unknown"): "unknown_stations",
    ("ledger", "max_batch"): "ledger_max_batch",
    ("ledger", "queue_size"): "ledger_queue_size",
    ("billing", "timezone"): "billing_timezone",
    ("billing", "idle_power_w"): "idle_power_w",
    ("billing", "card_hold_amount"): "card_hold_amount",
    ("payments", "provider"): "payment_provider",
    ("payments", "decline_rate"): "payment_decline_rate",
    ("payments", "timeout_rate"): "payment_timeout_rate",
    ("payments", "poll_interval"): "payment_poll_interval",
    ("cluster", "node_name"): "cluster_node_name",
    ("cluster", "heartbeat_s"): "cluster_heartbeat_s",
    ("cluster", "node_ttl_s"): "cluster_node_ttl_s",
    ("cluster", "workers"): "workers",
    ("cluster", "reuse_port"): "reuse_port",
    ("log", "level"): "log_level",
    ("log", "format"): "log_format",
}


class ConfigError(Exception):
    """Configuration that cannot be used, with a message naming what is wrong."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSMS_", extra="forbid")

    toml_file: ClassVar[Path | None] = None

    database_url: str = "sqlite:///csms.db"
    ocpp_host: str = "0.0.0.0"
    ocpp_port: int = Field(9000, ge=0, le=65535)
    api_host: str = "0.0.0.0"
    api_port: int = Field(8080, ge=0, le=65535)
    #: Uploaded diagnostics and hosted firmware (default: beside the SQLite file, as
    #: `NAME-files/`; on PostgreSQL `csms-files/`, which nodes must share to serve each
    #: other's files).
    api_files_dir: Path | None = None
    unknown_stations: UnknownStationPolicy = UnknownStationPolicy.REJECT
    heartbeat_interval: int = Field(300, ge=1)
    #: A station silent for this many heartbeat intervals is taken as offline.
    offline_after_heartbeats: float = Field(2.5, gt=1)
    call_timeout: float = Field(30.0, gt=0)
    ping_interval: float = Field(60.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    max_message_size: int = Field(256 * 1024, ge=1024)
    handshake_timeout: float = Field(10.0, gt=0, allow_inf_nan=False)
    #: Upgraded OCPP connections served at once; more handshakes get HTTP 503.
    max_connections: int = Field(20_000, ge=1)
    #: Handshakes in progress at once (not yet counted by `max_connections`); a connection
    #: beyond them is answered 503 and closed at once, without reading its request. High
    #: enough that a fleet reconnecting all at once after a restart is not shed (measured:
    #: 5,000 chargers at once were back 19 s after a kill uncapped, 53 s with a cap of 1,000,
    #: as the refused ones waited to retry); a waiting handshake costs a few KB and ends at
    #: `handshake_timeout`.
    max_handshakes: int = Field(10_000, ge=1)
    #: Each connection's sustained message rate, and the burst it may send above it
    #: (`csms.runtime.rate_limit` says what happens beyond).
    max_messages_per_second: float = Field(100.0, gt=0, allow_inf_nan=False)
    message_burst: int = Field(2_000, ge=1)
    #: The wss:// listener for security profiles 2 and 3 (None: not served).
    ocpp_tls_port: int | None = Field(None, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: The CA that profile-3 stations' client certificates must chain to.
    tls_client_ca_file: Path | None = None
    #: A profile-3 certificate's subject O must be exactly this.
    operator_name: str | None = None
    #: Failed authentications allowed per station id, and per source address, in the window.
    auth_max_failures_per_station: int = Field(5, ge=1)
    auth_max_failures_per_address: int = Field(20, ge=1)
    auth_failure_window: float = Field(60.0, gt=0)
    validate_responses: bool = True
    mailbox_size: int = Field(16, ge=1)
    ledger_max_batch: int = Field(1024, ge=1)
    ledger_queue_size: int = Field(8192, ge=1)
    #: The stations' local time zone, for tariffs' time-of-day, day and date restrictions.
    billing_timezone: str = "UTC"
    #: Average power (W) below which a plugged-in car is parked, not charging.
    idle_power_w: int = Field(100, ge=0)
    #: The hold taken on a card-on-file driver's card when a session starts.
    card_hold_amount: Decimal = Field(Decimal("50"), gt=0)
    #: The card provider: "simulated" (built in, behaves like a real one) or "none".
    payment_provider: str = "simulated"
    payment_decline_rate: float = Field(0.0, ge=0, le=1)
    payment_timeout_rate: float = Field(0.0, ge=0, le=1)
    #: How often the payments worker looks for due provider calls (seconds).
    payment_poll_interval: float = Field(2.0, gt=0)
    #: This node's name in the cluster registry (default: the host name); the pid is added.
    cluster_node_name: str | None = Field(None, min_length=1, max_length=200)
    #: How often a node records that it is alive (seconds), on PostgreSQL.
    cluster_heartbeat_s: float = Field(5.0, gt=0)
    #: A node silent for this long is dead: its stations no longer count as online.
    cluster_node_ttl_s: float = Field(20.0, gt=0)
    #: `csms serve` processes sharing the ports (more than one needs PostgreSQL).
    workers: int = Field(1, ge=1, le=256)
    #: Bind the OCPP and API ports with SO_REUSEPORT (set for the processes of --workers).
    reuse_port: bool = False
    log_level: str = "info"
    log_format: str = "console"

    @field_validator("billing_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
            ) from None
        return value

    @field_validator("payment_provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value not in {"simulated", "none"}:
            raise ValueError("must be simulated or none")
        return value

    def billing_rules(self) -> BillingRules:
        return BillingRules(
            idle_power_w=self.idle_power_w,
            tz=ZoneInfo(self.billing_timezone),
            card_hold_amount=self.card_hold_amount,
        )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @model_validator(mode="after")
    def _cluster(self) -> Settings:
        if self.cluster_node_ttl_s <= self.cluster_heartbeat_s:
            raise ValueError(
                f"cluster.node_ttl_s ({self.cluster_node_ttl_s:g}) must be longer than"
                f" cluster.heartbeat_s ({self.cluster_heartbeat_s:g}), or live nodes expire"
            )
        if self.workers > 1:
            if not self.is_postgres:
                raise ValueError(
                    f"{self.workers} workers need a shared PostgreSQL database"
                    " (database.url = postgresql://...); SQLite serves one process"
                )
            if self.ocpp_port == 0 or self.api_port == 0:
                raise ValueError("workers share fixed ports: ocpp.port and api.port cannot be 0")
        return self

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be debug, info, warning or error")
        return value

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in {"console", "json"}:
            raise ValueError("must be console or json")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, cls.toml_file))


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._values = _read_toml(path) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (TOML must be)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: top-level key {section!r} must be a [section]")
        for key, value in table.items():
            name = _TOML_KEYS.get((section, key))
            if name is None:
                raise ConfigError(f"config file {path}: unknown key {section}.{key}")
            values[name] = value
    return values


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, the TOML file, the environment and explicit overrides."""
    Settings.toml_file = config_file
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(_problem(error["loc"], error["msg"]) for error in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    finally:
        Settings.toml_file = None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """One validation error: the setting it is about (none for a rule between settings)."""
    if loc:
        return f"{'.'.join(str(p) for p in loc)}: {message}"
    return message.removeprefix("Value error, ")
