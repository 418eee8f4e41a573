"""API keys: how they are made, stored (only a hash) and what each scope allows.

Scopes are ordered: `read` < `operate` < `admin`; a key allows its scope and those below.
Keys are 256 random bits, so one SHA-256 of the key is a safe stored form (a slow password
hash protects guessable secrets; these are not guessable).
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

KEY_PREFIX = "csms_"


class Scope(StrEnum):
    read = "read"
    operate = "operate"
    admin = "admin"

    def allows(self, needed: Scope) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(needed)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_label(key: str) -> str:
    """The first characters of a key: enough to tell keys apart in a listing, useless alone."""
    return key[: len(KEY_PREFIX) + 6]
