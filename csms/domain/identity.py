"""What a charge point id may be: the rule shared by the endpoint and the registration CLI."""

from __future__ import annotations

import string

MAX_STATION_ID_LENGTH = 48
_ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.*+|@#=:")


class BadStationId(ValueError):
    pass


def validate_station_id(station_id: str) -> str:
    """Return the id if it is usable; raise BadStationId saying why not."""
    if not station_id:
        raise BadStationId("the charge point id is empty")
    if len(station_id) > MAX_STATION_ID_LENGTH:
        raise BadStationId(f"charge point id longer than {MAX_STATION_ID_LENGTH} characters")
    if not set(station_id) <= _ID_CHARACTERS:
        raise BadStationId(
            "charge point id may hold only letters, digits and -_.*+|@#=: characters"
        )
    return station_id
