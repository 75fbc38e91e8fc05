"""Password hashes for the console's users: scrypt, from the standard library.

    hash_password("correct horse")  -> "scrypt$ln=15,r=8,p=3$<salt>$<key>"
    verify_password(stored, "correct horse") -> True

scrypt is memory-hard (each guess costs 32 MiB and a few hundred milliseconds with these
parameters, OWASP's for scrypt), and hashlib has it: no dependency. The parameters travel in
the hash, so stronger ones can come later without breaking the hashes already set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

__all__ = ["hash_password", "is_password_hash", "verify_password"]

# log2 of N, r, p: OWASP's scrypt parameters (N = 2^15, r = 8, p = 3), 32 MiB a guess.
COST = (15, 8, 3)
# Hashes with more than this refuse to load: a typo should not take a gigabyte a sign-in.
MAX_LOG_N = 20
_SALT_BYTES = 16
_KEY_BYTES = 32
_FORMAT = re.compile(r"scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")


def hash_password(password: str, *, cost: tuple[int, int, int] = COST) -> str:
    """A new salted hash of `password`, parameters included."""
    log_n, r, p = cost
    salt = os.urandom(_SALT_BYTES)
    key = _derive(password, salt, log_n, r, p)
    return f"scrypt$ln={log_n},r={r},p={p}${_b64(salt)}${_b64(key)}"


def is_password_hash(text: str) -> bool:
    """Whether `text` is a hash `hash_password` made (with parameters leadsync accepts)."""
    return _parse(text) is not None


def verify_password(stored: str, password: str) -> bool:
    """Whether `password` is the one `stored` was made from; False for a malformed hash."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    log_n, r, p, salt, key = parsed
    return hmac.compare_digest(_derive(password, salt, log_n, r, p), key)


def _parse(text: str) -> tuple[int, int, int, bytes, bytes] | None:
    found = _FORMAT.fullmatch(text.strip())
    if found is None:
        return None
    log_n, r, p = (int(found.group(index)) for index in (1, 2, 3))
    if not (1 <= log_n <= MAX_LOG_N and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    try:
        salt = base64.b64decode(found.group(4), validate=True)
        key = base64.b64decode(found.group(5), validate=True)
    except ValueError:
        return None
    if len(salt) < 8 or len(key) != _KEY_BYTES:
        return None
    return log_n, r, p, salt, key


def _derive(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=2 * 128 * r * n + (1 << 20),
        dklen=_KEY_BYTES,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
