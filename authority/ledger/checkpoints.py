"""Signed checkpoints: the tree head of RFC 9162 §4.10 as a compact JWS (RFC 7515).

A checkpoint is the JWT ``{"iss", "iat", "tree_size", "root_hash"}`` with header
``{"alg", "kid", "typ": "checkpoint+jwt"}``, signed with the authority's ledger key
(never a token key: ``purpose="ledger"``). Hashes travel as unpadded base64url, the
encoding of every other binary member of JOSE.

Only ``verify_checkpoint`` turns a signed checkpoint into a ``VerifiedCheckpoint``; the
server and the offline verifier both use it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, KeySet
from joserfc.jws import deserialize_compact, extract_compact

from authority import protocol
from authority.tokens.jose import PRIVATE_MEMBERS, TOKEN_SIGNING_ALGORITHMS, registry

from .merkle import HASH_SIZE, MAX_TREE_SIZE

CHECKPOINT_TYP = protocol.CHECKPOINT_TYP
#: The algorithms a ledger key may sign with (settings.signing_alg).
CHECKPOINT_ALGORITHMS = TOKEN_SIGNING_ALGORITHMS
_B64_HASH = re.compile(r"^[A-Za-z0-9_-]{43}$")


class InvalidCheckpoint(ValueError):
    """A checkpoint whose signature, key, header or claims do not hold."""


def encode_hash(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def decode_hash(text: object) -> bytes:
    """A 32-byte hash from unpadded base64url; ``ValueError`` for anything else."""
    if not isinstance(text, str) or not _B64_HASH.match(text):
        raise ValueError("a hash is 43 characters of unpadded base64url")
    try:
        value = base64.urlsafe_b64decode(text + "=")
    except binascii.Error:
        raise ValueError("a hash is 43 characters of unpadded base64url") from None
    if len(value) != HASH_SIZE or encode_hash(value) != text:
        raise ValueError("a hash is 43 characters of unpadded base64url")
    return value


def checkpoint_claims(issuer: str, tree_size: int, root_hash: bytes, time: int) -> dict[str, Any]:
    return {
        "iss": issuer,
        "iat": time,
        "tree_size": tree_size,
        "root_hash": encode_hash(root_hash),
    }


def signed_kid(signed: str) -> str:
    """The ``kid`` of a compact JWS the authority itself just signed."""
    header = extract_compact(signed.encode()).headers()
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise ValueError("the signer did not name its key")
    return kid


@dataclass(frozen=True, slots=True)
class VerifiedCheckpoint:
    tree_size: int
    root_hash: bytes
    iat: int
    iss: str
    kid: str
    signed: str


def ledger_keyset(jwks: dict[str, Any]) -> KeySet:
    """The keys of a JWK Set (RFC 7517 §5) that can verify checkpoints, by ``kid``."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise ValueError("not a JWK Set: no keys array")
    usable = []
    for member in keys:
        if not isinstance(member, dict) or not isinstance(member.get("kid"), str):
            continue
        if member.get("kty") not in ("OKP", "EC", "RSA"):
            continue
        public = {k: v for k, v in member.items() if k not in PRIVATE_MEMBERS}
        try:
            usable.append(JWKRegistry.import_key(public))
        except (JoseError, ValueError, TypeError):
            continue
    return KeySet(usable)


def verify_checkpoint(signed: object, keys: KeySet) -> VerifiedCheckpoint:
    """Check a checkpoint's header, key and signature, and the shape of its claims."""
    if not isinstance(signed, str) or len(signed) > 4096:
        raise InvalidCheckpoint("the checkpoint is not a compact JWS")
    try:
        header = extract_compact(signed.encode()).headers()
    except (JoseError, ValueError, TypeError):
        raise InvalidCheckpoint("the checkpoint is not a compact JWS") from None
    if header.get("typ") != CHECKPOINT_TYP:
        raise InvalidCheckpoint("the JWS is not a ledger checkpoint (typ)")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise InvalidCheckpoint("the checkpoint names no key (kid)")
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        raise InvalidCheckpoint(f"the checkpoint is signed by an unknown key (kid {kid!r})")
    # RFC 8725 §3.1: the algorithm the key was published for, not whatever the header says.
    alg = header.get("alg")
    if alg not in CHECKPOINT_ALGORITHMS or (key.alg is not None and alg != key.alg):
        raise InvalidCheckpoint(f"the checkpoint's algorithm is not its key's (kid {kid!r})")
    try:
        verified = deserialize_compact(signed, key, registry=registry([alg]))
        claims = orjson.loads(verified.payload)
    except (JoseError, ValueError, TypeError):
        raise InvalidCheckpoint(
            f"the checkpoint's signature does not verify (kid {kid!r})"
        ) from None
    if not isinstance(claims, dict):
        raise InvalidCheckpoint("the checkpoint's claims are not a JSON object")
    size = _count(claims.get("tree_size"), "tree_size")
    iat = _count(claims.get("iat"), "iat")
    iss = claims.get("iss")
    if not isinstance(iss, str):
        raise InvalidCheckpoint("the checkpoint names no issuer")
    try:
        root = decode_hash(claims.get("root_hash"))
    except ValueError:
        raise InvalidCheckpoint("the checkpoint's root_hash is malformed") from None
    return VerifiedCheckpoint(size, root, iat, iss, kid, signed)


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise InvalidCheckpoint(f"the checkpoint's {name} is not a non-negative integer")
    return value
