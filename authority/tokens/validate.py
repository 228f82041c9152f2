"""Validating the authority's own JWTs when they come back to it (RFC 9068 §4, RFC 8725).

``tokens.inbound`` verifies what others sign (attestations, proofs); this module verifies
what the authority signed itself, for introspection and revocation. The key is ours,
found by ``kid`` in the keyring's memory (no I/O), the algorithm must be the one we sign
with, and the ``typ`` must be the kind of token the caller expects, so that a delegation
credential is never taken for an access token or the other way round (RFC 8725 §3.11).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from authority.context import Services
from authority.tokens.inbound import JWTRejected, UnverifiedJWT, require_int, require_str
from authority.tokens.jose import registry
from authority.tokens.own import OwnToken as OwnToken  # re-exported: its home before


@functools.lru_cache(maxsize=8)
def _registry(alg: str) -> Any:
    return registry([alg])


#: Most signature checks a verification cache keeps before it starts over.
CACHE_LIMIT = 10_000


def verify_own(
    services: Services,
    unverified: UnverifiedJWT,
    typ: str,
    *,
    cache: dict[str, OwnToken] | None = None,
) -> OwnToken:
    """Verify a JWT the authority signed as ``typ``; ``JWTRejected`` otherwise.

    With ``cache``, the result for these exact bytes is kept: a delegation credential is
    presented on every exchange of its agent, and the same bytes under the same still
    published key verify the same way. The key lookup is never skipped, so a key that
    is no longer published stops its tokens at once.
    """
    key, alg = _own_key(services, unverified, typ)
    digest = hashlib.sha256(unverified.raw.encode()).hexdigest() if cache is not None else ""
    if cache is not None and digest in cache:
        return cache[digest]
    verified = _verify(services, unverified, typ, key, alg)
    if cache is not None:
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[digest] = verified
    return verified


def recognise_own(services: Services, unverified: UnverifiedJWT, typ: str) -> OwnToken:
    """Everything ``verify_own`` checks but the signature; the caller must supply that.

    For a token whose SHA-256 digest the authority stored when it signed and issued it
    (grant rows): finding these exact bytes' digest there proves them ours as surely as
    the signature does (SHA-256 is preimage resistant), for the price of a hash instead
    of a signature check. Until the caller has found the digest, nothing here is
    authenticated and nothing in it may be trusted.
    """
    _own_key(services, unverified, typ)
    return _own_token(services, typ, unverified.claims)


def _own_key(services: Services, unverified: UnverifiedJWT, typ: str) -> tuple[Any, str]:
    """The published key and the algorithm the header names, if they are ours for ``typ``."""
    header = unverified.header
    # RFC 9068 §4: "verify that the typ header value is at+jwt"; likewise for our other types.
    if header.get("typ") != typ:
        raise JWTRejected("own_wrong_typ")
    alg = header.get("alg")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise JWTRejected("own_wrong_alg")
    key = services.keyring.public_key(kid, "token")
    if key is None:
        raise JWTRejected("own_unknown_key")
    # The algorithm the key itself was made for (RFC 8725 §3.1): tokens signed before a
    # change of settings.signing_alg keep verifying with their own key.
    if alg != key.alg:
        raise JWTRejected("own_wrong_alg")
    return key, alg


def _verify(
    services: Services, unverified: UnverifiedJWT, typ: str, key: Any, alg: str
) -> OwnToken:
    try:
        obj = jws.deserialize_compact(unverified.raw, key, registry=_registry(alg))
    except JoseError:
        raise JWTRejected("own_bad_signature") from None
    try:
        claims = json.loads(obj.payload)
    except (ValueError, RecursionError):
        raise JWTRejected("own_malformed") from None
    if not isinstance(claims, dict):
        raise JWTRejected("own_malformed")
    return _own_token(services, typ, claims)


def _own_token(services: Services, typ: str, claims: Mapping[str, Any]) -> OwnToken:
    # RFC 9068 §4: "The issuer identifier ... MUST exactly match the value of the iss claim."
    if claims.get("iss") != services.settings.issuer:
        raise JWTRejected("own_wrong_issuer")
    return OwnToken(
        typ=typ,
        claims=claims,
        jti=require_str(claims, "jti", max_length=64),
        exp=require_int(claims, "exp"),
    )
