"""Private signing keys at rest, sealed (``authority.sealing``) under a key of their own.

The database holds only sealed private keys, so a copy of it (a backup, a replica, a
leaked dump) signs nothing without the instance secret. The key id is the associated
data: a sealed key copied onto another row fails to open.
"""

from __future__ import annotations

from authority.sealing import FORMAT_V1, NONCE_BYTES, Sealer

#: The HKDF "info" (RFC 5869 §3.2): binds the derived key to this one use.
LABEL = b"authority/signing-keys/aes-256-gcm/v1"


class KeyDecryptionError(Exception):
    """A sealed private key did not open: another instance secret, or altered data."""


class KeySealer:
    """Seals and opens private keys; holds the derived key and never shows it."""

    __slots__ = ("_sealer",)

    def __init__(self, secret: bytes) -> None:
        self._sealer = Sealer(secret, label=LABEL)

    def __repr__(self) -> str:
        return "KeySealer(...)"

    def seal(self, plaintext: bytes, *, kid: str) -> bytes:
        return self._sealer.seal(plaintext, aad=kid)

    def open(self, sealed: bytes, *, kid: str) -> bytes:
        if len(sealed) <= 1 + NONCE_BYTES or sealed[:1] != FORMAT_V1:
            raise KeyDecryptionError(f"signing key {kid}: not a sealed key of a known format")
        opened = self._sealer.open(sealed, aad=kid)
        if opened is None:
            raise KeyDecryptionError(
                f"signing key {kid} cannot be decrypted: the instance secret "
                "(AUTHORITY_SECRET_KEY or data_dir/secret.key) is not the one it was "
                "encrypted with, or the stored key was altered"
            )
        return opened
