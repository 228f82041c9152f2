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
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

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
    """A parsed but NOT verified JWT: nothing in it may be trusted yet.

    Made by ``peek`` alone, which keeps the token's own segments (``segments``) so that
    the signature check needs no second parse: the claims it returns are the ones decoded
    here, from the very bytes the signature covers.
    """

    raw: str
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    #: The three encoded segments of ``raw``; empty unless made by ``peek``.
    segments: tuple[bytes, bytes, bytes] = field(default=(b"", b"", b""), repr=False)


#: base64url onto base64 in one pass: ``-``/``_`` become ``+``/``/``, and a ``+``, ``/`` or
#: ``=`` of the segment itself becomes ``!``, outside every alphabet, which strict mode refuses.
_FROM_URLSAFE = bytes.maketrans(b"-_+/=", b"+/!!!")
#: The last character of a segment whose length leaves 2 (or 4) bits over: those bits 0.
_ENDINGS = (b"AEIMQUYcgkosw048", b"AQgw")


def _b64decode(segment: bytes) -> bytes:
    """RFC 7515 §2 base64url, strictly: no padding, no ``+``/``/``, no stray bits, nothing
    outside the alphabet; the JOSE library's own rules (``joserfc.util.urlsafe_b64decode``),
    decoded by ``binascii`` in strict mode without its wrappers."""
    pad = -len(segment) % 4
    if pad == 3 or (pad and segment[-1] not in _ENDINGS[pad - 1]):
        raise binascii.Error("not base64url")
    return binascii.a2b_base64(segment.translate(_FROM_URLSAFE) + b"=" * pad, strict_mode=True)


#: The registered header members we read, with their JSON types (RFC 7515 §4.1, RFC 9449 §4.2).
_HEADER_TYPES: dict[str, type] = {"typ": str, "cty": str, "kid": str, "jwk": dict}


#: Header segments up to this size are kept parsed (``_header``); a signer's tokens share one.
MAX_KEPT_HEADER = 1024


@functools.lru_cache(maxsize=1024)
def _header(segment: bytes) -> tuple[Mapping[str, Any], bool]:
    """A header segment decoded and checked (read-only), and whether it names ``crit``.

    Kept by its exact bytes: the parse and every check here depend on them alone, and a
    segment refused raises (``lru_cache`` keeps no exception).
    """
    try:
        header = json.loads(_b64decode(segment).decode())
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise JWTRejected("jwt_malformed") from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise JWTRejected("jwt_malformed")
    # Every header member this package reads is compared, hashed or used as a key, so it
    # must have the type RFC 7515 §4.1 gives it before anything looks at it: a typ of
    # {} or [] is refused here, not as a TypeError in a set lookup.
    for name, kind in _HEADER_TYPES.items():
        if name in header and not isinstance(header[name], kind):
            raise JWTRejected("jwt_malformed")
    return MappingProxyType(header), "crit" in header


def peek(token: str) -> UnverifiedJWT:
    """Parse a compact JWS without verifying it, rejecting anything malformed."""
    if len(token) > MAX_JWT_BYTES:
        raise JWTRejected("jwt_too_large")
    try:
        parts = token.encode().split(b".")
    except UnicodeError:
        raise JWTRejected("jwt_malformed") from None
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise JWTRejected("jwt_malformed")
    head = parts[0]
    header, crit = _header(head) if len(head) <= MAX_KEPT_HEADER else _header.__wrapped__(head)
    try:
        claims = json.loads(_b64decode(parts[1]).decode())
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise JWTRejected("jwt_malformed") from None
    if not isinstance(claims, dict):
        raise JWTRejected("jwt_malformed")
    if crit:
        # RFC 7515 §4.1.11: we understand no extensions, so any crit must be refused.
        raise JWTRejected("jwt_unsupported_crit")
    return UnverifiedJWT(token, header, claims, (head, parts[1], parts[2]))


def algorithms_for(key: PublicKey) -> frozenset[str]:
    kty = key.key_type
    crv = key.as_dict().get("crv") if kty in ("OKP", "EC") else None
    allowed = algorithms_for_key(kty, crv if isinstance(crv, str) else None)
    # A key's own alg narrows it further (RFC 8725 §3.1).
    return allowed & {key.alg} if key.alg is not None else allowed


#: Distinct headers a prepared key remembers as checked (its tokens share one or two).
MAX_HEADERS_PER_KEY = 16


class PreparedKey:
    """A verification key with the algorithms it may verify, checked against the JOSE
    library once (the key's type, ``use`` and ``alg`` against each algorithm), so that a
    signature check is the header's registry check and the signature itself.

    Prepare a key once and keep it (per kid of a key set, per DPoP ``jwk``): what is
    checked here depends on the key and the algorithms alone.
    """

    __slots__ = ("_checked", "_headers", "algorithms", "key")

    def __init__(self, key: PublicKey, algorithms: Collection[str]) -> None:
        self.key = key
        self.algorithms = frozenset(algorithms)
        self._checked: dict[str, tuple[Any, Any, tuple[int, int, int]]] = {}
        #: Encoded headers that passed the registry's check (a pure function of them).
        self._headers: set[bytes] = set()
        for alg in self.algorithms:
            try:
                pinned = _registry(frozenset({alg}))
                algorithm = pinned.get_alg(alg)
                algorithm.check_key(key)
            except (JoseError, ValueError, TypeError):
                continue  # never verifies: a token naming it has a bad signature
            # The registry's size limits (``validate_*_size``): header, payload, signature.
            limits = (pinned.max_header_length, pinned.max_payload_length)
            self._checked[alg] = (pinned, algorithm, (*limits, pinned.max_signature_length))

    def verify(self, unverified: UnverifiedJWT) -> dict[str, Any]:
        """Verify the signature under the header's ``alg``; return the claims."""
        if not unverified.segments[0]:
            unverified = peek(unverified.raw)  # not made by peek: parse the token itself
        alg = unverified.header["alg"]
        if alg not in self.algorithms:
            raise JWTRejected("jwt_alg_not_allowed")
        checked = self._checked.get(alg)
        if checked is None:
            raise JWTRejected("jwt_bad_signature")
        pinned, algorithm, (max_header, max_payload, max_signature) = checked
        header_segment, payload_segment, signature_segment = unverified.segments
        # joserfc's own checks of a compact JWS, in the order ``jws.deserialize_compact``
        # runs them, without what it would redo (the parse is peek's, of these same bytes):
        # its size limits, the header against the registry, the signature.
        sizes = len(header_segment), len(payload_segment), len(signature_segment)
        if (
            sum(sizes) + 2 > max_header + max_payload + max_signature
            or sizes[0] > max_header
            or sizes[2] > max_signature
            or sizes[1] > max_payload
        ):
            raise JWTRejected("jwt_bad_signature")
        try:
            if header_segment not in self._headers:
                pinned.check_header(dict(unverified.header))
                if len(self._headers) >= MAX_HEADERS_PER_KEY:
                    self._headers.clear()
                self._headers.add(header_segment)
            signature = _b64decode(signature_segment)
            verified = algorithm.verify(
                header_segment + b"." + payload_segment, signature, self.key
            )
        except (JoseError, ValueError, TypeError):
            raise JWTRejected("jwt_bad_signature") from None
        if not verified:
            raise JWTRejected("jwt_bad_signature")
        # peek decoded these claims from the payload segment the signature covers.
        return dict(unverified.claims)


def verify_signature(
    unverified: UnverifiedJWT, key: PublicKey, algorithms: Collection[str]
) -> dict[str, Any]:
    """Verify the signature with ``key`` under one of ``algorithms``; return the claims.

    No key set is searched (the caller chose ``key``). A caller verifying with the same
    key again and again should keep a ``PreparedKey`` instead.
    """
    return PreparedKey(key, algorithms).verify(unverified)


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
