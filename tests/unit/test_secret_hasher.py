"""Stored secret hashes (``authority.secrets.SecretHasher``): HMAC-SHA256 under the key."""

from __future__ import annotations

import hashlib
import hmac

from authority.secrets import SecretHasher

KEY = b"k" * 32 + b"-the-hashing-key"


def test_a_hash_is_the_hmac_sha256_of_the_secret_under_the_key() -> None:
    hasher = SecretHasher(KEY)
    for secret in ("rs_secret", "", "é" * 300, "rs_" + "x" * 256):
        expected = hmac.new(KEY, secret.encode(), hashlib.sha256).hexdigest()
        assert hasher.hash(secret) == expected
        assert hasher.verify(secret, expected)


def test_each_hash_starts_from_the_key_alone() -> None:
    hasher = SecretHasher(KEY)
    first = hasher.hash("one")
    hasher.hash("two")
    assert hasher.hash("one") == first
    assert not hasher.verify("one", hasher.hash("two"))
    assert not hasher.verify("one", SecretHasher(b"o" * 32).hash("one"))
