"""The OCPP 2.1 adapter: the core of 2.1 on the 2.0.1 mapping, NotImplemented for the rest.

2.1 keeps the core messages of 2.0.1 (BootNotification, Heartbeat, StatusNotification,
Authorize, TransactionEvent, MeterValues) and only adds optional fields to them, so their
payloads, validated against the 2.1 schemas, become the same domain events through the
2.0.1 mapping, and the answers are the same. Every other 2.1 action is validated against
its schema and answered `NotImplemented`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.domain.events import DomainEvent
from csms.protocol import schemas, v201
from csms.protocol.errors import NotImplementedCall

VERSION = "ocpp2.1"

#: The 2.1 actions handled for real.
CORE_ACTIONS = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
        "MeterValues",
    }
)

#: Actions the CSMS initiates on a 2.1 station: those of 2.0.1, with 2.1's schemas.
CSMS_ACTIONS = v201.CSMS_ACTIONS

#: Every 2.1 action a station may call is taken in, validated and then answered: the core
#: for real, the rest NotImplemented. Only what the CSMS alone sends is refused as
#: NotSupported (a station does not send those); DataTransfer goes both ways.
CHARGER_ACTIONS = (schemas.actions(VERSION) - CSMS_ACTIONS) | CORE_ACTIONS | {"DataTransfer"}

to_payload = v201.to_payload
commands_after = v201.commands_after


def to_event(station_id: str, action: str, payload: dict[str, Any], now: datetime) -> DomainEvent:
    """The domain event a schema-valid 2.1 core CALL means; NotImplemented for the rest."""
    if action not in CORE_ACTIONS:
        raise NotImplementedCall(f"{action} is not implemented for OCPP 2.1")
    return v201.TO_EVENT[action](station_id, payload, now)
