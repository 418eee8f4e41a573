"""Local authorization of a virtual charger: the Local Authorization List the CSMS pushes
(SendLocalList, GetLocalListVersion) and the authorization cache (ClearCache).

The list has a version; a Full update replaces it, a Differential update adds, changes or
(an entry without idTagInfo) removes entries and must carry a newer version. The cache
remembers the idTagInfo of every answer the CSMS gave. Both are consulted when the charger
is offline (LocalAuthorizeOffline) or before asking the CSMS (LocalPreAuthorize).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from csms.protocol import v16


class UpdateStatus(StrEnum):
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    NOT_SUPPORTED = "NotSupported"
    VERSION_MISMATCH = "VersionMismatch"


class LocalAuthorization:
    def __init__(self, max_length: int = 1000, max_update: int = 200) -> None:
        self.max_length = max_length
        self.max_update = max_update
        self.version = 0
        self.entries: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, dict[str, Any]] = {}

    # -- the local list ------------------------------------------------------------------

    def update(
        self, version: int, update_type: str, entries: list[dict[str, Any]] | None
    ) -> UpdateStatus:
        """Apply a SendLocalList request (the caller checks LocalAuthListEnabled)."""
        items = entries or []
        if len(items) > self.max_update:
            return UpdateStatus.FAILED
        if update_type == "Full":
            new = {e["idTag"]: dict(e["idTagInfo"]) for e in items if "idTagInfo" in e}
        else:
            if version <= self.version:
                return UpdateStatus.VERSION_MISMATCH
            new = dict(self.entries)
            for entry in items:
                if "idTagInfo" in entry:
                    new[entry["idTag"]] = dict(entry["idTagInfo"])
                else:
                    new.pop(entry["idTag"], None)
        if len(new) > self.max_length:
            return UpdateStatus.FAILED
        self.entries = new
        # A Full update with an empty list (and version 0) clears the list.
        self.version = version if new or update_type != "Full" else 0
        return UpdateStatus.ACCEPTED

    # -- the cache -----------------------------------------------------------------------

    def remember(self, id_tag: str, id_tag_info: dict[str, Any]) -> None:
        self.cache[id_tag] = dict(id_tag_info)

    def clear_cache(self) -> None:
        self.cache.clear()

    # -- decisions -----------------------------------------------------------------------

    def lookup(self, id_tag: str, now: datetime, *, use_list: bool, use_cache: bool) -> str | None:
        """The status the local list (first) or the cache knows for `id_tag`, None if
        neither knows it. An expired entry reads as Expired."""
        info = self.entries.get(id_tag) if use_list else None
        if info is None and use_cache:
            info = self.cache.get(id_tag)
        if info is None:
            return None
        status = str(info.get("status", "Invalid"))
        expiry = info.get("expiryDate")
        if status == "Accepted" and expiry and v16.parse_time(expiry) <= now:
            return "Expired"
        return status
