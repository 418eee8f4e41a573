"""The version adapters by subprotocol name, and subprotocol negotiation.

An adapter module names the actions of each direction (`CHARGER_ACTIONS`, `CSMS_ACTIONS`),
turns a station's CALL into a domain event (`to_event`) and the ledger's reply into the
CALLRESULT payload (`to_payload`); 2.x adapters also name calls the CSMS sends after an
answer (`commands_after`).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from csms.domain.replies import Reply
from csms.protocol import v16, v21, v201

#: Subprotocol -> adapter module, in the server's order of preference.
ADAPTERS: dict[str, ModuleType] = {"ocpp2.1": v21, "ocpp2.0.1": v201, "ocpp1.6": v16}


def negotiate(offered: Iterable[str], supported: Iterable[str] = ADAPTERS) -> str | None:
    """The first subprotocol in the client's list that the server supports."""
    ours = set(supported)
    return next((name for name in offered if name in ours), None)


def commands_after(adapter: ModuleType, reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """The calls (action, payload) the CSMS sends a station after answering it with
    `reply`; none for adapters that send none."""
    follow: Any = getattr(adapter, "commands_after", None)
    return [] if follow is None else list(follow(reply))
