"""Sealing of private keys at rest (AES-256-GCM under an HKDF-derived key)."""

from __future__ import annotations

import pytest

from authority.tokens.sealing import KeyDecryptionError, KeySealer

SECRET = b"an-instance-secret-of-at-least-32-bytes!"
PLAINTEXT = b'0.\x02\x01\x000\x05\x06\x03+ep\x04"\x04 private key bytes of a test key'


def test_round_trip() -> None:
    sealer = KeySealer(SECRET)
    sealed = sealer.seal(PLAINTEXT, kid="kid-1")
    assert PLAINTEXT not in sealed
    assert sealer.open(sealed, kid="kid-1") == PLAINTEXT


def test_each_seal_uses_a_fresh_nonce() -> None:
    sealer = KeySealer(SECRET)
    assert sealer.seal(PLAINTEXT, kid="k") != sealer.seal(PLAINTEXT, kid="k")


def test_another_secret_cannot_open() -> None:
    sealed = KeySealer(SECRET).seal(PLAINTEXT, kid="kid-1")
    with pytest.raises(KeyDecryptionError, match="instance secret"):
        KeySealer(b"another-secret-of-at-least-32-bytes-long").open(sealed, kid="kid-1")


def test_a_sealed_key_is_bound_to_its_kid() -> None:
    sealer = KeySealer(SECRET)
    sealed = sealer.seal(PLAINTEXT, kid="kid-1")
    with pytest.raises(KeyDecryptionError):
        sealer.open(sealed, kid="kid-2")


def test_altered_ciphertext_is_refused() -> None:
    sealer = KeySealer(SECRET)
    sealed = bytearray(sealer.seal(PLAINTEXT, kid="k"))
    sealed[-1] ^= 1
    with pytest.raises(KeyDecryptionError):
        sealer.open(bytes(sealed), kid="k")


@pytest.mark.parametrize("sealed", [b"", b"\x01", b"\x02" + bytes(40)])
def test_unknown_format_is_refused(sealed: bytes) -> None:
    with pytest.raises(KeyDecryptionError, match="format"):
        KeySealer(SECRET).open(sealed, kid="k")


def test_the_derived_key_is_not_the_secret() -> None:
    # HKDF with a label of its own: the secret used raw as an AES key would open this.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = KeySealer(SECRET).seal(PLAINTEXT, kid="k")
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        AESGCM(SECRET[:32]).decrypt(sealed[1:13], sealed[13:], b"k")


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeySealer(b"short")


def test_repr_shows_nothing() -> None:
    assert repr(KeySealer(SECRET)) == "KeySealer(...)"
