"""The owner's webhook secret: made, signed with (Standard Webhooks), sealed at rest.

Each delivery carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature:
v1,<base64 HMAC-SHA-256 over "{id}.{timestamp}.{body}">`` under the owner's secret
``whsec_<base64 of 32 random bytes>``, shown once when the URL is registered and kept
only sealed (AES-256-GCM under a key derived from the instance secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from authority.sealing import Sealer

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32
SIGNATURE_VERSION: Final = "v1"
#: HKDF "info" (RFC 5869 §3.2): this key seals webhook secrets and nothing else.
SEAL_LABEL: Final = b"authority/webhook-secrets/aes-256-gcm/v1"


# --- the signature (Standard Webhooks, "Signature scheme") ----------------------------------
def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 after the ``whsec_`` prefix, decoded."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


# --- the secret at rest ------------------------------------------------------------------
class SecretSealer:
    """The owner's secret sealed (``authority.sealing``) under a key of its own; the owner
    id is the associated data, so a secret copied onto another owner's row does not open."""

    __slots__ = ("_sealer",)

    def __init__(self, instance_secret: bytes) -> None:
        self._sealer = Sealer(instance_secret, label=SEAL_LABEL)

    def __repr__(self) -> str:
        return "SecretSealer(...)"

    def seal(self, secret: str, *, owner_id: str) -> bytes:
        return self._sealer.seal(secret.encode(), aad=owner_id)

    def open(self, sealed: bytes, *, owner_id: str) -> str | None:
        opened = self._sealer.open(sealed, aad=owner_id)
        return None if opened is None else opened.decode()
