"""Compact JWS (RFC 7515) parsing and signature checks under the JWT BCP (RFC 8725), shared
by the authority and the resource servers that verify its tokens.

Every JWS the authority or this SDK signs or verifies goes through a registry built
here, so the accepted algorithms are named in one place (``authority.protocol``) and
never taken from the token itself. Nothing here chooses a key: callers do, from their
own key sets (RFC 8725 §3.10), and ``authority.tokens.inbound`` builds the server's
verifiers on these pieces.

``EdDSA`` (RFC 8037) is kept as the signing algorithm name although RFC 9864 deprecates it
in favour of ``Ed25519``: the verifiers resource servers actually run (PyJWT, authlib,
jose libraries in other languages) know ``EdDSA`` and not yet ``Ed25519``. The curve is
fixed by the key (OKP, crv Ed25519), which is what RFC 9864 is about; joserfc's
per-call deprecation warning is therefore silenced for it, and only for it.
"""

from __future__ import annotations

import binascii
import copy
import functools
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from authority.protocol import algorithms_for_key

MAX_JWT_BYTES = 8192

PublicKey = OKPKey | ECKey | RSAKey

_EDDSA = copy.copy(JWSRegistry.algorithms["EdDSA"])
_EDDSA.security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _EDDSA}  # noqa: RUF012 (as in the base)
    #: The encoded protected header may carry a public key (a DPoP proof's ``jwk``, RFC 9449
    #: §4.2): an RSA key of 2048 bits makes it about 550 bytes, 4096 bits about 950, past
    #: joserfc's default of 512. Still bounded, and well below any key this accepts.
    max_header_length = 2048


def registry(algorithms: Collection[str]) -> JWSRegistry:
    """A registry accepting exactly ``algorithms`` (never ``none``, never HMAC)."""
    unknown = [a for a in algorithms if a not in _Registry.algorithms or a.startswith("HS")]
    if unknown or "none" in algorithms:
        raise ValueError(f"unsupported JWS algorithms: {unknown or ['none']}")
    return _Registry(algorithms=list(algorithms))


class JWTRejected(Exception):
    """A JWT failed verification; ``reason`` is a stable code for grants and logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class UnverifiedJWT:
    """A parsed but NOT verified JWT: nothing in it may be trusted yet."""

    raw: str
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def _b64decode(segment: str) -> bytes:
    """RFC 7515 §2 base64url, strictly: no padding, no ``+``/``/``, no stray bits (the
    JOSE library's own decoder), since ``verify_signature`` checks this very decoding."""
    if "=" in segment:
        raise ValueError("padding")
    return urlsafe_b64decode(segment.encode("ascii"))


#: The registered header members we read, with their JSON types (RFC 7515 §4.1, RFC 9449 §4.2).
_HEADER_TYPES: dict[str, type] = {"typ": str, "cty": str, "kid": str, "jwk": dict}


def peek(token: str) -> UnverifiedJWT:
    """Parse a compact JWS without verifying it, rejecting anything malformed."""
    if len(token) > MAX_JWT_BYTES:
        raise JWTRejected("jwt_too_large")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise JWTRejected("jwt_malformed")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise JWTRejected("jwt_malformed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTRejected("jwt_malformed")
    if not isinstance(header.get("alg"), str):
        raise JWTRejected("jwt_malformed")
    # Every header member this package reads is compared, hashed or used as a key, so it
    # must have the type RFC 7515 §4.1 gives it before anything looks at it: a typ of
    # {} or [] is refused here, not as a TypeError in a set lookup.
    for name, kind in _HEADER_TYPES.items():
        if name in header and not isinstance(header[name], kind):
            raise JWTRejected("jwt_malformed")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so any crit must be refused.
        raise JWTRejected("jwt_unsupported_crit")
    return UnverifiedJWT(token, header, claims)


def algorithms_for(key: PublicKey) -> frozenset[str]:
    kty = key.key_type
    crv = key.as_dict().get("crv") if kty in ("OKP", "EC") else None
    allowed = algorithms_for_key(kty, crv if isinstance(crv, str) else None)
    # A key's own alg narrows it further (RFC 8725 §3.1).
    return allowed & {key.alg} if key.alg is not None else allowed


def verify_signature(
    unverified: UnverifiedJWT, key: PublicKey, algorithms: Collection[str]
) -> dict[str, Any]:
    """Verify the signature with ``key`` under one of ``algorithms``; return the claims.

    joserfc's own checks of a compact JWS, in the order ``jws.deserialize_compact`` runs
    them (sizes, the header against the registry of the one allowed ``alg``, the key's
    type, use and alg against the algorithm, the signature over the token's own first
    two segments), without what it would redo: the header is ``peek``'s, decoded from
    these same bytes (``UnverifiedJWT`` is made by ``peek`` alone), and no key set is
    searched (the caller chose ``key``).
    """
    header = unverified.header
    alg = header["alg"]
    if alg not in algorithms:
        raise JWTRejected("jwt_alg_not_allowed")
    pinned = _registry(frozenset({alg}))
    value = unverified.raw.encode()
    try:
        pinned.validate_compact_value_size(value)
        header_segment, payload_segment, signature_segment = value.split(b".")
        pinned.validate_header_size(header_segment)
        pinned.validate_signature_size(signature_segment)
        pinned.validate_payload_size(payload_segment)
        pinned.check_header(dict(header))
        algorithm = pinned.get_alg(alg)
        algorithm.check_key(key)
        payload = urlsafe_b64decode(payload_segment)
        signature = urlsafe_b64decode(signature_segment)
        verified = algorithm.verify(header_segment + b"." + payload_segment, signature, key)
    except (JoseError, ValueError, TypeError):
        raise JWTRejected("jwt_bad_signature") from None
    if not verified:
        raise JWTRejected("jwt_bad_signature")
    # The claims are re-read from the verified payload, not reused from ``peek``.
    claims = json.loads(payload)
    if not isinstance(claims, dict):
        raise JWTRejected("jwt_malformed")
    return claims


@functools.lru_cache(maxsize=64)
def _registry(algorithms: frozenset[str]) -> Any:
    return registry(sorted(algorithms))


# --- time and identity claims --------------------------------------------------------------
def require_str(claims: Mapping[str, Any], name: str, *, max_length: int = 2048) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise JWTRejected(f"jwt_bad_{name}")
    return value


#: NumericDate values beyond this are not times (and 1e999 parses as infinity).
MAX_NUMERIC_DATE = 2**53


def require_int(claims: Mapping[str, Any], name: str) -> int:
    """A NumericDate (RFC 7519 §2): a finite JSON number, possibly non-integer."""
    value = claims.get(name)
    # bool is an int subclass; true is not a time. NaN fails the comparison below.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JWTRejected(f"jwt_bad_{name}")
    if not -MAX_NUMERIC_DATE < value < MAX_NUMERIC_DATE:
        raise JWTRejected(f"jwt_bad_{name}")
    return int(value)


def audience_includes(claims: Mapping[str, Any], accepted: Collection[str]) -> bool:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return aud in accepted
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return any(a in accepted for a in aud)
    return False
