"""What a virtual charger saw, for the results layer: every message, every session and
(when asked for) every acknowledged transaction message.

Plain dataclasses, one per row of the DataFrames the results are saved as. A message's
`at` is the simulation's true wall-clock time; a session's times are the timestamps the
charger reported (its own clock, clock skew included, to the millisecond), as the CSMS
records them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One OCPP message sent or received by a charger.

    `direction` is "sent" or "received"; `kind` is CALL, CALLRESULT, CALLERROR or
    "malformed"; `action` is the CALL's action (for a reply, the action it answers, "" when
    that is unknown); `size` is the message's length in bytes; `note` says why a message was
    not processed as usual ("dropped": a reply lost on purpose, "rejected", "unknown").
    """

    station_id: str
    direction: str
    kind: str
    action: str
    message_id: str
    at: datetime
    size: int
    note: str = ""


@dataclass(slots=True)
class SessionRecord:
    """One transaction a charger started, as the charger knows it.

    `transaction_id` is the CSMS's id (None until the CSMS answered the start, and for ever
    if it never did); `started_at` and `stopped_at` are the timestamps the charger reported;
    `energy_wh` is the energy its register measured (meter stop - meter start, summed over
    meter resets), `exact_energy_wh` what the physics delivered.
    """

    station_id: str
    connector_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: int
    transaction_id: int | None = None
    stopped_at: datetime | None = None
    meter_stop_wh: int | None = None
    energy_wh: int | None = None
    exact_energy_wh: float = 0.0
    stop_reason: str | None = None
    via_app: bool = False
    reservation_id: int | None = None
    #: The idTagInfo status the CSMS answered the StartTransaction with.
    start_status: str | None = None
    meter_resets: int = 0
    #: Every energy register reading (timestamp, Wh) the charger reported for it, in the
    #: order sent: what the CSMS's rater will see, to price the session independently.
    readings: list[tuple[datetime, float]] = field(default_factory=list)
    #: 2.x: the charger's own id for the transaction (the CSMS assigns none it would tell).
    station_tx_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A driver who could not charge: `status` is the authorization status (Invalid,
    Blocked, Expired, ConcurrentTx) or why the charger refused (Reserved, Unavailable,
    Faulted, Occupied, Offline, ConnectionTimeOut)."""

    station_id: str
    connector_id: int
    id_tag: str
    at: datetime
    status: str
    via_app: bool = False


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """A transaction message the CSMS answered with a CALLRESULT: by OCPP's rules it is
    then durably recorded, so a crash harness checks every one of them against the ledger.

    `payload` is the message as last sent (a 1.6 MeterValues or StopTransaction with the
    transaction id the CSMS gave its start; a 2.0.1 TransactionEvent names the charger's own
    transaction id and seqNo); `result` is the CALLRESULT's payload.
    """

    station_id: str
    action: str
    payload: dict[str, Any]
    result: dict[str, Any]
