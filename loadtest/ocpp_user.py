"""`OcppChargerUser`: a Locust user that is one OCPP charge point; and its command-line options.

Owns the Locust side only: the `--ocpp-*` options (registered on import), one charger per
user with an id unique across users and workers, the connection's life (connect, reconnect
after a loss or a hard reset), and one Locust request event per CALL:
`request_type` `OCPP1.6` (or `OCPP2.0.1`), `name` the action, the round trip in ms, and as
`exception` a CALLERROR, a timeout, a closed connection, an invalid reply, or a refusal (a
boot or an id tag not Accepted). Connecting is reported as `WS` `connect`, a connection lost
while idle as `WS` `connection`. With `--ocpp-settle S` the stats start anew S seconds after
all users are spawned, so that a run measures the fleet, not its boot storm.

Security profiles 1 and 2: `--ocpp-password PW` sends HTTP Basic credentials (the charge
point id and PW: register the stations with one shared password) and a `wss://` host is
trusted through `--ocpp-ca-file CA.pem` (the system's CAs without it). Profile 3:
`--ocpp-client-cert C.pem --ocpp-client-key K.pem` is one client certificate for every user
of the process (its CN names one charge point, so it suits a run of one user per process,
e.g. `-u 1` per worker with `--ocpp-id-prefix`); `--ocpp-cert-dir DIR` gives each user its
own, `DIR/ID.pem` and `DIR/ID.key`, for a fleet.

What the charger sends and when is `loadtest.locust_charger` (1.6) and `loadtest.locust_v201`;
the socket is `loadtest.locust_link`. While a user waits between tasks it keeps reading its
socket and answers the CSMS's calls, as a charger does.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import random
import ssl
import time
import zlib
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gevent
from locust import User, events, task
from locust.runners import WorkerRunner

from csms.protocol.frames import Call
from loadtest.locust_charger import PROFILES, Charger, ChargerModel, Profile
from loadtest.locust_fleet import (
    DEFAULT_ID_PREFIX,
    DEFAULT_TOKEN_PREFIX,
    DEFAULT_TOKENS,
    charge_point_id,
    token_pool,
)
from loadtest.locust_link import (
    CallFailed,
    ConnectFailed,
    ConnectionLost,
    OcppLink,
    Refused,
)
from loadtest.locust_run import STATS_RESET_LOG
from loadtest.locust_v201 import HeartbeatCharger201

VERSIONS = {"1.6": ("ocpp1.6", "OCPP1.6"), "2.0.1": ("ocpp2.0.1", "OCPP2.0.1")}
TRANSPORT_TYPE = "WS"
#: The longest a user reads its socket before Locust gets a look at it (stop, rebalance).
MAX_IDLE_S = 30.0

_user_numbers = itertools.count(1)
log = logging.getLogger(__name__)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The `--ocpp-*` options; Locust also reads them from its config file."""
    add = parser.add_argument
    add("--ocpp-version", choices=sorted(VERSIONS), default="1.6", help="OCPP version")
    add("--ocpp-profile", choices=PROFILES, default="realistic", help="pacing (stress: no waits)")
    add(
        "--ocpp-heartbeat-interval",
        type=float,
        default=0.0,
        help="realistic: seconds between heartbeats (0: the interval the CSMS gives at boot)",
    )
    add("--ocpp-meter-interval", type=float, default=60.0, help="realistic: MeterValues every s")
    add("--ocpp-sessions-per-day", type=float, default=6.0, help="realistic: sessions per day")
    add("--ocpp-session-minutes", type=float, default=45.0, help="realistic: mean session length")
    add("--ocpp-stress-meter-values", type=int, default=3, help="stress: MeterValues per session")
    add("--ocpp-id-prefix", default=DEFAULT_ID_PREFIX, help="charge point ids: PREFIX{worker}-N")
    add("--ocpp-token-prefix", default=DEFAULT_TOKEN_PREFIX, help="id tags: PREFIX0000, ...")
    add("--ocpp-tokens", type=int, default=DEFAULT_TOKENS, help="id tag pool size")
    add("--ocpp-call-timeout", type=float, default=30.0, help="seconds to wait for an answer")
    add("--ocpp-connect-timeout", type=float, default=10.0, help="seconds to open a connection")
    add("--ocpp-password", default="", help="HTTP Basic password of every charger (profiles 1-2)")
    add("--ocpp-ca-file", default="", help="wss://: the CA certificate (PEM) to trust")
    add("--ocpp-client-cert", default="", help="wss://: one client certificate (PEM), profile 3")
    add("--ocpp-client-key", default="", help="wss://: the client certificate's key (PEM)")
    add("--ocpp-cert-dir", default="", help="wss://: per-charger certificates ID.pem and ID.key")
    add(
        "--ocpp-settle",
        type=float,
        default=0.0,
        help="reset the stats this many s after all users are spawned (boots not measured)",
    )


def install_settling(environment: Any, **_: Any) -> None:
    """On `init`: once all users are spawned, wait `--ocpp-settle` seconds and start the
    stats anew (on the master or a lone runner; workers report to the master)."""
    settle = float(getattr(environment.parsed_options, "ocpp_settle", 0.0) or 0.0)
    if settle <= 0 or isinstance(environment.runner, WorkerRunner):
        return

    def reset() -> None:
        environment.runner.stats.reset_all()
        log.info(STATS_RESET_LOG)

    def on_spawned(**_: Any) -> None:
        gevent.spawn_later(settle, reset)

    environment.events.spawning_complete.add_listener(on_spawned)


events.init_command_line_parser.add_listener(add_options)  # type: ignore[no-untyped-call]
events.init.add_listener(install_settling)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class UserSettings:
    """The options every user of a run shares."""

    version: str = "1.6"
    profile: Profile = field(default_factory=Profile)
    id_prefix: str = DEFAULT_ID_PREFIX
    tokens: tuple[str, ...] = field(default_factory=lambda: tuple(token_pool()))
    call_timeout: float = 30.0
    connect_timeout: float = 10.0
    #: HTTP Basic password (the username is the charge point id); None: no credentials.
    password: str | None = None
    #: The CA a wss:// CSMS is trusted through; None: the system's CAs.
    ca_file: str | None = None
    #: One client certificate and its key for every user (profile 3).
    client_cert: str | None = None
    client_key: str | None = None
    #: A client certificate per user: `ID.pem` and `ID.key` (profile 3).
    cert_dir: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("--ocpp-client-cert and --ocpp-client-key go together")
        if self.client_cert is not None and self.cert_dir is not None:
            raise ValueError("--ocpp-client-cert and --ocpp-cert-dir exclude each other")

    @classmethod
    def from_options(cls, options: Any) -> UserSettings:
        """From Locust's parsed options (None when Locust runs as a library: defaults)."""
        if options is None or not hasattr(options, "ocpp_version"):
            return cls()
        profile = Profile(
            name=options.ocpp_profile,
            heartbeat_interval=options.ocpp_heartbeat_interval or None,
            meter_interval=options.ocpp_meter_interval,
            sessions_per_day=options.ocpp_sessions_per_day,
            session_minutes=options.ocpp_session_minutes,
            stress_meter_values=options.ocpp_stress_meter_values,
        )
        return cls(
            version=options.ocpp_version,
            profile=profile,
            id_prefix=options.ocpp_id_prefix,
            tokens=tuple(token_pool(options.ocpp_token_prefix, options.ocpp_tokens)),
            call_timeout=options.ocpp_call_timeout,
            connect_timeout=options.ocpp_connect_timeout,
            password=getattr(options, "ocpp_password", "") or None,
            ca_file=getattr(options, "ocpp_ca_file", "") or None,
            client_cert=getattr(options, "ocpp_client_cert", "") or None,
            client_key=getattr(options, "ocpp_client_key", "") or None,
            cert_dir=getattr(options, "ocpp_cert_dir", "") or None,
        )

    def headers(self, charge_point_id_: str) -> list[tuple[str, str]]:
        """The handshake's extra headers: Basic credentials when there is a password."""
        if self.password is None:
            return []
        token = b64encode(f"{charge_point_id_}:{self.password}".encode()).decode()
        return [("Authorization", f"Basic {token}")]

    def ssl_context(self, url: str, charge_point_id_: str) -> ssl.SSLContext | None:
        """For a wss:// URL, the context trusting the CA file and presenting the client
        certificate, if any (built once, shared by the users with the same certificate);
        None for the defaults."""
        if not url.startswith("wss://"):
            return None
        cert, key = self.client_cert, self.client_key
        if self.cert_dir is not None:
            folder = Path(self.cert_dir)
            cert, key = (
                str(folder / f"{charge_point_id_}.pem"),
                str(folder / f"{charge_point_id_}.key"),
            )
        if self.ca_file is None and cert is None:
            return None
        return _client_context(self.ca_file, cert, key)

    @property
    def subprotocol(self) -> str:
        return VERSIONS[self.version][0]

    @property
    def request_type(self) -> str:
        return VERSIONS[self.version][1]

    def make_charger(self, charge_point_id_: str, now: float) -> Charger:
        if self.version == "2.0.1":
            return HeartbeatCharger201(charge_point_id_, self.profile, now)
        # Seeded by the id: a rerun replays each charger's choices.
        rng = random.Random(zlib.crc32(charge_point_id_.encode()))
        return ChargerModel(charge_point_id_, self.profile, self.tokens, rng, now)


@functools.cache
def _client_context(ca_file: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def worker_index(runner: Any) -> int:
    """This process's Locust worker index (0 alone); from its client id for a master too old
    to hand out indexes."""
    index = getattr(runner, "worker_index", 0)
    if isinstance(index, int) and index >= 0:
        return index
    return 1000 + zlib.crc32(str(getattr(runner, "client_id", "")).encode()) % 9000


class OcppChargerUser(User):
    """One OCPP charge point: boots, sends heartbeats and status notifications, runs
    charging sessions with meter values, and answers the CSMS's calls while it waits.

    `--host` is the CSMS's OCPP base URL (`ws://127.0.0.1:9000/ocpp`); the charger connects
    to `{host}/{charge point id}`.
    """

    host = "ws://127.0.0.1:9000/ocpp"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.settings = UserSettings.from_options(environment.parsed_options)
        worker = worker_index(environment.runner)
        self.charge_point_id = charge_point_id(self.settings.id_prefix, worker, next(_user_numbers))
        self.charger = self.make_charger(self.charge_point_id, time.time())
        self.link: OcppLink | None = None

    def make_charger(self, charge_point_id_: str, now: float) -> Charger:
        """The charger this user plays (a subclass may play another)."""
        return self.settings.make_charger(charge_point_id_, now)

    @property
    def url(self) -> str:
        return f"{(self.host or OcppChargerUser.host).rstrip('/')}/{quote(self.charge_point_id)}"

    @task
    def step(self) -> None:
        """Send whatever the charger has due: one CALL, or a (re)connection first."""
        if (self.link is None or self.charger.reconnect_requested) and not self._connect():
            return
        message = self.charger.next_message(time.time())
        if message is None or self.link is None:
            return
        action, payload = message
        outcome = self.link.call(action, payload)
        now = time.time()
        error = outcome.error
        if error is None:
            assert outcome.payload is not None
            refusal = self.charger.on_result(action, outcome.payload, now)
            error = Refused(refusal) if refusal else None
        else:
            self.charger.on_error(action, now)
        self._report(action, outcome.response_time_ms, outcome.response_length, error)
        if self.link.closed:
            self._lost(now)

    def wait_time(self) -> float:
        """Wait until the charger has something due, reading the socket meanwhile.

        Locust calls this while the user is in its waiting state (so a stop may end the user
        here); the wait itself happens in `OcppLink.idle`, which answers CSMS calls.
        """
        delay = min(self.charger.delay(time.time()), MAX_IDLE_S)
        if delay <= 0 or self.link is None:
            return delay
        try:
            self.link.idle(delay, self._woken)
        except ConnectionLost as exc:
            self._report("connection", 0.0, 0, exc, TRANSPORT_TYPE)
            self._lost(time.time())
        return 0.0

    def on_stop(self) -> None:
        self._drop_link()

    # -- internals -----------------------------------------------------------------------

    def _woken(self) -> bool:
        return self.charger.reconnect_requested or self.charger.delay(time.time()) <= 0

    def _connect(self) -> bool:
        self._drop_link()
        self.charger.reconnect_requested = False
        started = time.perf_counter()
        try:
            try:
                context = self.settings.ssl_context(self.url, self.charge_point_id)
            except (OSError, ssl.SSLError) as exc:  # a missing or broken certificate file
                raise ConnectFailed(f"TLS client settings: {exc}") from None
            self.link = OcppLink.open(
                self.url,
                self.settings.subprotocol,
                self._answer,
                self.settings.connect_timeout,
                self.settings.call_timeout,
                headers=self.settings.headers(self.charge_point_id),
                ssl_context=context,
            )
        except ConnectFailed as exc:
            elapsed = (time.perf_counter() - started) * 1000.0
            self._report("connect", elapsed, 0, exc, TRANSPORT_TYPE)
            self.charger.on_disconnect(time.time())
            return False
        self._report("connect", (time.perf_counter() - started) * 1000.0, 0, None, TRANSPORT_TYPE)
        return True

    def _answer(self, call: Call) -> str:
        return self.charger.answer(call, time.time())

    def _lost(self, now: float) -> None:
        self._drop_link()
        self.charger.on_disconnect(now)

    def _drop_link(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def _report(
        self,
        name: str,
        response_time_ms: float,
        length: int,
        error: CallFailed | ConnectFailed | None,
        request_type: str | None = None,
    ) -> None:
        self.environment.events.request.fire(
            request_type=request_type or self.settings.request_type,
            name=name,
            response_time=response_time_ms,
            response_length=length,
            exception=error,
            context={"charge_point_id": self.charge_point_id},
        )
