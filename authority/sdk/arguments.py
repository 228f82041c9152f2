"""A tool call's arguments bound to its token: the RFC 8785 digest both sides compute.

The agent asks for a token for one call with the call's arguments (a JSON object) in its
``tool_call`` authorization detail (RFC 9396); the authority puts their digest in the
token's detail as ``arguments_digest``; whoever enforces the call (the gateway, a
resource server) recomputes the digest of the arguments it is about to act on and
refuses the call when the two differ. The digest is ``sha-256:`` and the unpadded
base64url SHA-256 of the arguments' JSON Canonicalization Scheme form (RFC 8785), so
any JSON library on either side agrees on it whatever order or spacing it writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Final

import rfc8785

__all__ = [
    "PREFIX",
    "UncanonicalArguments",
    "canonical",
    "digest",
    "digest_of_canonical",
    "matches",
]

PREFIX: Final = "sha-256:"


class UncanonicalArguments(ValueError):
    """The arguments have no RFC 8785 form: a non-finite number, an integer beyond
    I-JSON's safe range, a non-string key or a value JSON does not have."""


def canonical(arguments: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``arguments``."""
    try:
        return rfc8785.dumps(arguments)
    except (rfc8785.CanonicalizationError, TypeError, RecursionError) as exc:
        raise UncanonicalArguments(type(exc).__name__) from None


def digest(arguments: Any) -> str:
    """``sha-256:`` + base64url (no padding) of the SHA-256 of ``canonical(arguments)``."""
    return digest_of_canonical(canonical(arguments))


def digest_of_canonical(form: bytes) -> str:
    """The digest of arguments already in their canonical form (``canonical``)."""
    raw = hashlib.sha256(form).digest()
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def matches(arguments: Any, expected: str) -> bool:
    """True when ``arguments`` have exactly the digest ``expected`` (constant time)."""
    try:
        actual = digest(arguments)
    except UncanonicalArguments:
        return False
    return hmac.compare_digest(actual.encode(), expected.encode("utf-8", "replace"))
