"""Private signing keys at rest: AES-256-GCM (NIST SP 800-38D) under an HKDF (RFC 5869) key.

The database holds only sealed private keys, so a copy of it (a backup, a replica, a
leaked dump) signs nothing without the instance secret. The AES key is derived from that
secret with a label of its own, so it is never the key that HMACs generated secrets.
The key id is the associated data: a sealed key copied onto another row fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: The HKDF "info" (RFC 5869 §3.2): binds the derived key to this one use.
LABEL = b"authority/signing-keys/aes-256-gcm/v1"
#: First byte of every sealed value, so that the format can change without guessing.
FORMAT_V1 = b"\x01"
NONCE_BYTES = 12  # SP 800-38D §8.2: 96-bit random nonces


class KeyDecryptionError(Exception):
    """A sealed private key did not open: another instance secret, or altered data."""


class KeySealer:
    """Seals and opens private keys; holds the derived key and never shows it."""

    __slots__ = ("_aead",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the instance secret must be at least 32 bytes")
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=LABEL).derive(secret)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "KeySealer(...)"

    def seal(self, plaintext: bytes, *, kid: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, kid.encode())

    def open(self, sealed: bytes, *, kid: str) -> bytes:
        if len(sealed) <= 1 + NONCE_BYTES or sealed[:1] != FORMAT_V1:
            raise KeyDecryptionError(f"signing key {kid}: not a sealed key of a known format")
        nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, kid.encode())
        except InvalidTag:
            raise KeyDecryptionError(
                f"signing key {kid} cannot be decrypted: the instance secret "
                "(AUTHORITY_SECRET_KEY or data_dir/secret.key) is not the one it was "
                "encrypted with, or the stored key was altered"
            ) from None
