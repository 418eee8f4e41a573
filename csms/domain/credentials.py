"""Station passwords (security profiles 1 and 2): the rule, generation, salted hashing, checking.

Only the hash is ever stored: `scrypt$N$r$p$SALT$KEY` (base64 salt and key), so the cost
parameters can be raised later without breaking stored hashes. Checking compares in constant
time. Passwords never appear in logs or error messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

MIN_PASSWORD_LENGTH = 16
MAX_PASSWORD_LENGTH = 40
#: OCPP 1.6 security profiles' passwordString: printable ASCII, no spaces (they end up in an
#: HTTP header, where anything else is ambiguous).
_PASSWORD_CHARACTERS = frozenset(string.printable) - frozenset(string.whitespace)
# 16 MiB and a few tens of ms per check: generated passwords carry ~190 bits, so the cost is
# there for chosen ones, and kept low because a reconnecting fleet checks many at once.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32


class BadPassword(ValueError):
    pass


def validate_password(password: str) -> str:
    """Return the password if it is usable; raise BadPassword saying why not (not what)."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise BadPassword(
            f"a station password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
            f"characters (this one has {len(password)})"
        )
    if not set(password) <= _PASSWORD_CHARACTERS:
        raise BadPassword("a station password may hold only printable ASCII without spaces")
    return password


def generate_password() -> str:
    """A new random password of 32 URL-safe characters."""
    return secrets.token_urlsafe(24)


def hash_password(password: str) -> str:
    """The salted scrypt hash of a valid password, as stored."""
    validate_password(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password.encode(), salt, _N, _R, _P)
    return "$".join(
        ["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(key)],
    )


def verify_password(password: bytes, stored: str) -> bool:
    """Whether `password` matches the stored hash; False for a malformed hash."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(
            password, base64.b64decode(salt, validate=True), int(n), int(r), int(p), len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, size: int = _KEY_BYTES) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=size, maxmem=64 * 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
