"""Public JWKs of each kind an agent may register, made fresh for each call."""

from __future__ import annotations

from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey


def ed25519_jwk(kid: str = "k1", **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = OKPKey.generate_key("Ed25519").as_dict(private=False)
    return {**jwk, "kid": kid, **extra}


def p256_jwk(kid: str = "e1", **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = ECKey.generate_key("P-256").as_dict(private=False)
    return {**jwk, "kid": kid, **extra}


def rsa_jwk(kid: str = "r1", bits: int = 2048, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAKey.generate_key(bits).as_dict(private=False)
    return {**jwk, "kid": kid, **extra}
