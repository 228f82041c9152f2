"""The JSON form of a gateway's call record (``gateway.contracts.CallRecord``), parsed strictly.

One JSON object: the members of ``CallRecord`` (``started_at`` in Unix seconds,
``duration_ms`` in milliseconds), each body as ``{"digest", "size", "head", "truncated"}``
with the head unpadded base64url (RFC 4648 §5); plus ``submission_id``, the gateway's own
id for the record (a resubmission of it is the same call, stored once), and, for a
gateway that authenticates with ``private_key_jwt``, the RFC 7523 §2.2 parameters
``client_assertion_type`` and ``client_assertion`` (and optionally ``client_id``) as
members, since the body is JSON rather than a form.

The checks that make the record one the ledger can hold are here, each with a fixed
message: a head longer than ``recording_max_body_bytes`` is 413; a head that says it is
the whole body and is not, a blocked call that names no rule, a call without a token
that names an agent, are 400. Nothing is stored unless every one of them holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from authority.errors import InvalidRequest, PayloadTooLarge
from authority.ledger.gateway_entries import MAX_MASKING_RULES, body_digest
from authority.management.inputs import Body, parse

#: The longest head any setting allows (``recording_max_body_bytes`` le), in base64url.
_MAX_HEAD_TEXT = -(-4 * 1024 * 1024 // 3) * 4
#: The members that authenticate the gateway, not part of the record.
AUTH_MEMBERS = ("client_id", "client_assertion_type", "client_assertion")

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
Long = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=_PRINTABLE)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
Jti = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
Count = Annotated[int, Field(ge=0, lt=2**53)]


class BodyIn(Body):
    digest: Annotated[str, StringConstraints(pattern=r"^sha-256:[A-Za-z0-9_-]{43}$")]
    size: Count
    head: Annotated[str, StringConstraints(max_length=_MAX_HEAD_TEXT, pattern=r"^[A-Za-z0-9_-]*$")]
    truncated: bool


class CallIn(Body):
    """The record as submitted: shapes and bounds only (the rules are ``checked``)."""

    submission_id: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ]
    upstream: Text
    kind: Literal["http", "mcp"]
    method: Text
    target: Long
    outcome: Literal["forwarded", "refused", "blocked", "upstream_error"]
    status: Annotated[int, Field(ge=100, le=599)]
    started_at: Annotated[float, Field(ge=0, le=2**53 / 1000)]
    duration_ms: Annotated[float, Field(ge=0, le=2**53 / 1000)]
    jti: Jti | None = None
    agent_id: Id | None = None
    owner_id: Id | None = None
    delegation_id: Id | None = None
    tool: Text | None = None
    resource: Long | None = None
    action: Text | None = None
    request: BodyIn | None = None
    response: BodyIn | None = None
    masked: dict[Text, Count] = Field(default_factory=dict, max_length=MAX_MASKING_RULES)
    blocked_by: Text | None = None
    # Client authentication (RFC 7523 §2.2), read by ``client_params``; not recorded.
    client_id: str | None = None
    client_assertion_type: str | None = None
    client_assertion: str | None = None


@dataclass(frozen=True, slots=True)
class Head:
    """One side of the call as the ledger holds it: the body's digest and size, the head."""

    digest: str
    size: int
    head: bytes
    truncated: bool

    def entry(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "size": self.size,
            "head_digest": body_digest(self.head),
            "head_size": len(self.head),
            "truncated": self.truncated,
        }


class ClientParams:
    """The authentication members of the JSON body, as ``client_auth.presented`` reads a
    form (``client_auth.Params``): a string member or nothing; an empty one is absent."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._values = {
            name: value
            for name in AUTH_MEMBERS
            if isinstance(value := document.get(name), str) and value
        }

    def get(self, key: str) -> str | None:
        return self._values.get(key)


def raw_jti(document: Mapping[str, Any]) -> str:
    """The token id the record names, unchecked, to load its grant with the caller's row."""
    value = document.get("jti")
    return value if isinstance(value, str) and 0 < len(value) <= 64 else ""


def max_request_bytes(max_head: int, max_body: int) -> int:
    """The largest submission: two heads in base64url and ``max_body`` for the rest."""
    return 2 * (-(-max_head // 3) * 4) + max_body


def _head(side: str, body: BodyIn | None, bound: int) -> Head | None:
    if body is None:
        return None
    try:
        head = base64.urlsafe_b64decode(body.head + "=" * (-len(body.head) % 4))
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"The {side} head is not base64url.") from None
    if len(head) > bound:
        raise PayloadTooLarge(
            f"The {side} head is longer than this authority records (recording_max_body_bytes)."
        )
    if body.truncated:
        if len(head) >= body.size:
            raise InvalidRequest(f"A truncated {side} head must be shorter than its body.")
    elif len(head) != body.size or body_digest(head) != body.digest:
        raise InvalidRequest(
            f"The {side} head is not truncated, so it must be the whole body: "
            "its size and digest must be the body's."
        )
    return Head(body.digest, body.size, head, body.truncated)


@dataclass(frozen=True, slots=True)
class Checked:
    call: CallIn
    request: Head | None
    response: Head | None


def checked(document: Mapping[str, Any], max_head: int) -> Checked:
    """The record, if the ledger can hold it; ``InvalidRequest`` / 413 naming why not."""
    call = parse(CallIn, document)
    if (call.outcome == "blocked") != (call.blocked_by is not None):
        raise InvalidRequest("A blocked call, and only a blocked call, names its blocked_by rule.")
    if call.jti is None:
        if call.outcome != "refused":
            raise InvalidRequest("Only a refused call may have no jti.")
        if any(v is not None for v in (call.agent_id, call.owner_id, call.delegation_id)):
            raise InvalidRequest("A call without a jti names no agent, owner or delegation.")
    return Checked(
        call, _head("request", call.request, max_head), _head("response", call.response, max_head)
    )
