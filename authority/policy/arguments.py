"""A tool call's arguments in its RFC 9396 ``tool_call`` detail, bound to the token by digest.

The agent may name the arguments of the one call it asks for, as ``arguments`` (the JSON
object it will send) or as ``arguments_digest`` alone (``authority.sdk.arguments``:
``sha-256:`` and the unpadded base64url SHA-256 of their RFC 8785 form), or both, which
must then agree. The token's detail carries the digest, never the arguments: whoever
enforces the call recomputes it over what it is about to act on. The arguments
themselves, when sent, are seen by the decision (Cedar's ``context.arguments``) and by
the owner asked to approve the call, and are kept nowhere else.

RFC 9396 §5: a detail with "fields of the wrong type" is refused with
``invalid_authorization_details``; so is one whose arguments have no canonical form
(RFC 8785 §3.2.2.3 and I-JSON, RFC 7493: a non-finite number, an integer beyond
±(2**53 - 1), an unpaired surrogate), or that are larger than the configured bound in
that canonical form. Every refusal is a fixed description that never echoes the value.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from authority import protocol
from authority.sdk.arguments import PREFIX, UncanonicalArguments, canonical, digest_of_canonical

ARGUMENTS: Final = protocol.DETAIL_ARGUMENTS
ARGUMENTS_DIGEST: Final = protocol.DETAIL_ARGUMENTS_DIGEST
#: ``sha-256:`` and the 43 unpadded base64url characters of 32 bytes.
_DIGEST = re.compile(r"^" + re.escape(PREFIX) + r"[A-Za-z0-9_-]{43}$")

NOT_AN_OBJECT: Final = "The tool_call arguments must be a JSON object."
UNCANONICAL: Final = (
    "The tool_call arguments have no RFC 8785 canonical form (a non-finite number, an "
    "integer beyond 2^53, or an unpaired surrogate)."
)
BAD_DIGEST: Final = "The tool_call arguments_digest must be sha-256: and 43 base64url characters."
DISAGREE: Final = "The tool_call arguments and arguments_digest do not agree."


def too_large(limit: int) -> str:
    return f"The tool_call arguments exceed {limit} bytes in their canonical form."


class ArgumentsRejected(ValueError):
    """The detail's arguments cannot be bound; ``str()`` is a fixed description."""


@dataclass(frozen=True, slots=True)
class BoundArguments:
    """The digest the token will carry, and the arguments when the agent sent them."""

    digest: str
    # Never in a repr (a log line): arguments may hold anything the agent sends a tool.
    arguments: Mapping[str, Any] | None = field(default=None, repr=False)


def well_formed_digest(value: object) -> bool:
    """``sha-256:`` + the canonical unpadded base64url of exactly 32 bytes."""
    if not isinstance(value, str) or _DIGEST.match(value) is None:
        return False
    encoded = value[len(PREFIX) :]
    raw = base64.urlsafe_b64decode(encoded + "=")
    # 43 characters carry 258 bits: the last two must be zero, or two spellings of one
    # digest would exist and only one of them would ever match a recomputed digest.
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == encoded


def bind(detail: Mapping[str, Any], *, max_bytes: int) -> BoundArguments | None:
    """The arguments a ``tool_call`` detail binds, or None when it names none.

    Raises ``ArgumentsRejected`` for a detail whose arguments cannot be bound.
    """
    has_arguments = ARGUMENTS in detail
    has_digest = ARGUMENTS_DIGEST in detail
    if not has_arguments and not has_digest:
        return None
    stated: str | None = None
    if has_digest:
        value = detail[ARGUMENTS_DIGEST]
        if not well_formed_digest(value):
            raise ArgumentsRejected(BAD_DIGEST)
        stated = str(value)
    if not has_arguments:
        if stated is None:  # has_digest holds here; kept explicit for the type checker
            raise ArgumentsRejected(BAD_DIGEST)
        return BoundArguments(stated)
    arguments = detail[ARGUMENTS]
    if not isinstance(arguments, dict):
        raise ArgumentsRejected(NOT_AN_OBJECT)
    try:
        form = canonical(arguments)
    except UncanonicalArguments:
        raise ArgumentsRejected(UNCANONICAL) from None
    if len(form) > max_bytes:
        raise ArgumentsRejected(too_large(max_bytes))
    computed = digest_of_canonical(form)
    if stated is not None and not hmac.compare_digest(computed, stated):
        raise ArgumentsRejected(DISAGREE)
    return BoundArguments(computed, arguments)
