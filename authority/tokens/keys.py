"""A signing key on its own: its forms (stored, published, opened) and how one is made.

Apart from the keyring (``tokens.keyring``), which decides which key signs and when keys
change: what is here holds for one key whatever its state, so the rules that make a key
trustworthy (its ``kid`` is its RFC 7638 thumbprint, its algorithm is fixed for its
life, its private key fits that algorithm) are read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from joserfc import jwk, jws
from joserfc.errors import JoseError
from joserfc.jwk import KeyParameters

from authority.tokens.jose import TOKEN_SIGNING_ALGORITHMS, registry
from authority.tokens.sealing import KeySealer

Purpose = Literal["token", "ledger"]
Status = Literal["next", "active", "retired"]
PURPOSES: tuple[Purpose, ...] = ("token", "ledger")

#: The curve of each elliptic-curve algorithm keys are made for (RFC 8037 §3.1, RFC 7518
#: §3.4); RS256 keys are RSA (RFC 7518 §3.3).
_CURVES = {"EdDSA": "Ed25519", "ES256": "P-256"}
#: RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
RSA_MIN_BITS = 2048


class KeyringError(Exception):
    """The signing keys are unusable or the requested change cannot be made."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A signing key as operators see it: public facts only."""

    kid: str
    purpose: Purpose
    alg: str
    status: Status
    created_at: int
    activated_at: int | None
    retired_at: int | None
    publish_until: int | None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as stored: the public JWK and the sealed private key (``KeySealer``)."""

    kid: str
    purpose: Purpose
    alg: str
    status: Status
    public_jwk: str
    private_key: bytes = field(repr=False)
    created_at: int
    activated_at: int
    publish_until: int | None


@dataclass(frozen=True, slots=True)
class Signer:
    """An opened private key, ready for joserfc: prepared once, used by every ``sign``."""

    kid: str
    alg: str
    key: jwk.OKPKey | jwk.ECKey | jwk.RSAKey = field(repr=False)
    registry: jws.JWSRegistry = field(repr=False)


@dataclass(frozen=True, slots=True)
class Published:
    """A public key in the JWKS: its JWK members and the joserfc key that verifies."""

    kid: str
    purpose: Purpose
    status: Status
    publish_until: int | None
    public_jwk: dict[str, Any]
    key: jwk.Key = field(repr=False)

    def visible(self, now: float) -> bool:
        return self.publish_until is None or now < self.publish_until


def published_key(row: StoredKey) -> Published:
    """The stored public key as published; ``KeyringError`` unless it is the kid's own."""
    try:
        members = orjson.loads(row.public_jwk)
        key = jwk.import_key(members)
    except (orjson.JSONDecodeError, JoseError, ValueError, TypeError):
        raise KeyringError(f"signing key {row.kid}: the stored public key is invalid") from None
    if key.is_private or key.thumbprint() != row.kid:
        raise KeyringError(f"signing key {row.kid}: the stored public key is not its own")
    return Published(row.kid, row.purpose, row.status, row.publish_until, members, key)


def open_signer(row: StoredKey, sealer: KeySealer) -> Signer:
    """The stored private key opened for signing; ``KeyringError`` unless it fits."""
    if row.alg not in TOKEN_SIGNING_ALGORITHMS:
        raise KeyringError(f"signing key {row.kid}: unsupported algorithm {row.alg}")
    der = sealer.open(row.private_key, kid=row.kid)
    params: KeyParameters = {"kid": row.kid, "alg": row.alg, "use": "sig"}
    key: jwk.OKPKey | jwk.ECKey | jwk.RSAKey
    try:
        if row.alg == "EdDSA":
            key = jwk.OKPKey.import_key(der, params)
        elif row.alg == "ES256":
            key = jwk.ECKey.import_key(der, params)
        else:
            key = jwk.RSAKey.import_key(der, params)
    except (JoseError, ValueError, TypeError):
        raise KeyringError(f"signing key {row.kid}: the private key is invalid") from None
    # Each key signs with the algorithm it was made for, and only with a key of that
    # algorithm's type (RFC 8725 §3.1), whatever signing_alg says now.
    if isinstance(key, jwk.RSAKey):
        fits = key.private_key is not None and key.private_key.key_size >= RSA_MIN_BITS
    else:
        fits = key.curve_name == _CURVES.get(row.alg)
    if not fits or not key.is_private or key.thumbprint() != row.kid:
        raise KeyringError(f"signing key {row.kid}: the private key does not match its kid")
    return Signer(row.kid, row.alg, key, registry([row.alg]))


def make_key(
    alg: str,
    rsa_bits: int,
    sealer: KeySealer,
    purpose: Purpose,
    status: Status,
    activated_at: int,
    now: int,
) -> dict[str, Any]:
    """A fresh key pair of ``alg`` as the values of its ``signing_keys`` row (sealed)."""
    key: jwk.OKPKey | jwk.ECKey | jwk.RSAKey
    if alg == "EdDSA":
        key = jwk.OKPKey.generate_key("Ed25519")
    elif alg == "ES256":
        key = jwk.ECKey.generate_key("P-256")
    else:
        key = jwk.RSAKey.generate_key(rsa_bits)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    return {
        "kid": kid,
        "purpose": purpose,
        "alg": alg,
        "public_jwk": orjson.dumps(public, option=orjson.OPT_SORT_KEYS).decode(),
        "private_key": sealer.seal(key.as_der(private=True), kid=kid),
        "status": status,
        "created_at": now,
        "activated_at": activated_at,
    }
