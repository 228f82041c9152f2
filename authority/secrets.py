"""Generated identifiers and secrets, and how their hashes are stored.

Secrets the authority generates carry 256 bits of entropy, so a keyed hash
(HMAC-SHA-256) is as strong as a slow password hash against guessing and costs
microseconds instead of milliseconds on every introspection.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SECRET_BYTES = 32  # 256 bits

# Every id ``new_id`` makes matches; anything else cannot name a stored object.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def new_id(prefix: str) -> str:
    """A random, URL-safe, prefixed identifier (``agt_...``): 128 bits, not guessable."""
    return f"{prefix}_{secrets.token_hex(16)}"


def valid_id(value: str) -> bool:
    """Whether ``value`` can be an id this authority made (checked before any lookup)."""
    return _ID.match(value) is not None


def new_secret(prefix: str) -> str:
    """A credential with 256 bits of entropy, prefixed so leaks are easy to scan for."""
    return f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


class SecretHasher:
    """Keyed hashing of generated secrets and tokens: what is stored instead of them."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the hashing key must be at least 32 bytes")
        # The key's HMAC-SHA256 state, set up once: each hash continues a copy of it
        # (hmac.HMAC.copy), which costs less than ``hmac.digest``'s one-shot call, where
        # OpenSSL fetches the MAC and schedules the key again on every authenticated
        # request. The result is the same HMAC-SHA256 of the key and the secret.
        self._keyed = hmac.new(key, digestmod="sha256")

    def hash(self, secret: str) -> str:
        mac = self._keyed.copy()
        mac.update(secret.encode())
        return mac.hexdigest()

    def verify(self, secret: str, stored: str) -> bool:
        return hmac.compare_digest(self.hash(secret), stored)


def token_hash(token: str) -> str:
    """The unkeyed SHA-256 of a token, as recorded in grants and the ledger.

    Unkeyed so that an auditor holding a token can find its grant; a token has too much
    entropy for the hash to reveal it.
    """
    return hashlib.sha256(token.encode()).hexdigest()
