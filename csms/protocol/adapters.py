"""The version adapters by subprotocol name, and subprotocol negotiation."""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from csms.protocol import v16

#: Subprotocol -> adapter module (CHARGER_ACTIONS, CSMS_ACTIONS, to_event, to_payload),
#: in the server's order of preference.
ADAPTERS: dict[str, ModuleType] = {"ocpp1.6": v16}


def negotiate(offered: Iterable[str], supported: Iterable[str] = ADAPTERS) -> str | None:
    """The first subprotocol in the client's list that the server supports."""
    ours = set(supported)
    return next((name for name in offered if name in ours), None)
