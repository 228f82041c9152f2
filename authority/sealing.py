"""Values sealed at rest: AES-256-GCM (NIST SP 800-38D) under an HKDF (RFC 5869) key.

One construction for every secret the authority must keep but never store in clear
(signing keys, webhook secrets): a key derived from the instance secret with a label of
its own per use, so no derived key is ever the one that HMACs generated secrets or seals
anything else; a random 96-bit nonce (SP 800-38D §8.2); the row's id as associated data,
so a sealed value copied onto another row does not open. Layout: a format byte, the
nonce, the ciphertext with its tag.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: First byte of every sealed value, so that the format can change without guessing.
FORMAT_V1 = b"\x01"
NONCE_BYTES = 12  # SP 800-38D §8.2: 96-bit random nonces


class Sealer:
    """Seals and opens values under a key derived for one ``label``; never shows the key."""

    __slots__ = ("_aead",)

    def __init__(self, secret: bytes, *, label: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the instance secret must be at least 32 bytes")
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=label).derive(secret)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(...)"

    def seal(self, plaintext: bytes, *, aad: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, aad.encode())

    def open(self, sealed: bytes, *, aad: str) -> bytes | None:
        """The plaintext; None for a value of another format, key or row, or altered."""
        if len(sealed) <= 1 + NONCE_BYTES or sealed[:1] != FORMAT_V1:
            return None
        nonce, ciphertext = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, aad.encode())
        except InvalidTag:
            return None
