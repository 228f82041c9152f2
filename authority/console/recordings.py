"""A call's recording on the auditor's entry page, read through ``recordings.audit``.

For a ``gateway_call`` entry: what the ledger says of the call (status, outcome, masking
counts, the rule that blocked it, the bodies' digests and sizes) next to the sealed heads
while they are retained, as text with every character that is not printable escaped
(the heads are whatever an agent or a tool sent). Past retention, or never stored, the
page says so plainly. For an issued grant: the calls recorded under it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Final

import orjson

from authority.context import Services
from authority.errors import NotFound
from authority.management import paging
from authority.recordings import audit

#: Calls of one grant listed on its entry's page.
GRANT_CALLS: Final = 50


def head_text(encoded: str | None) -> str | None:
    """A head as text: UTF-8 where it is, ``\\xNN`` for a byte that is not, and every
    character that is not printable (controls, bidi overrides) as its escape."""
    if encoded is None:
        return None
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() or c == "\n" else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True, slots=True)
class Side:
    digest: str
    size: int
    head_digest: str
    head_size: int
    truncated: bool
    head: str | None  # None: not retained, or unreadable


@dataclass(frozen=True, slots=True)
class Recording:
    call_id: str
    status: int
    outcome: str
    masked: dict[str, int]
    blocked_by: str | None
    request: Side | None
    response: Side | None
    retained: bool
    message: str | None  # why the heads are not shown
    retained_until: int | None = None
    unreadable: tuple[str, ...] = ()


def _side(body: Any, head: str | None) -> Side | None:
    if not isinstance(body, dict):
        return None
    return Side(
        str(body["digest"]),
        int(body["size"]),
        str(body["head_digest"]),
        int(body["head_size"]),
        bool(body["truncated"]),
        head_text(head),
    )


async def of_call(services: Services, entry: dict[str, Any]) -> Recording:
    """The recording of the call a ``gateway_call`` entry ``entry`` records."""
    call_id = str(entry["call_id"])
    try:
        found: dict[str, Any] | None = await audit.recording(services, call_id)
        message = None
    except NotFound as refused:
        found = None
        past = refused.description == audit.PAST_RETENTION
        message = (
            "Past retention: the recorded bodies were deleted; this entry and its digests remain."
            if past
            else "No recording is stored for this call."
        )
    heads = found or {}
    return Recording(
        call_id=call_id,
        status=int(entry["status"]),
        outcome=str(entry["outcome"]),
        masked=dict(entry.get("masked") or {}),
        blocked_by=entry.get("blocked_by"),
        request=_side(entry.get("request"), heads.get("request_head")),
        response=_side(entry.get("response"), heads.get("response_head")),
        retained=found is not None,
        message=message,
        retained_until=heads.get("retained_until"),
        unreadable=tuple(heads.get("unreadable", ())),
    )


@dataclass(frozen=True, slots=True)
class GrantCall:
    call_id: str
    leaf_index: int | None
    recorded_at: int
    status: int
    outcome: str
    retained: bool


async def of_grant(services: Services, grant_id: str) -> tuple[list[GrantCall], bool]:
    """The first ``GRANT_CALLS`` calls recorded under ``grant_id``; True if there are more."""
    listing = await audit.of_grant(
        services, grant_id=grant_id, jti=None, page=paging.PageRequest(GRANT_CALLS, None)
    )
    calls = []
    for item in listing.items:
        body = orjson.loads(item["entry"]["body"])
        calls.append(
            GrantCall(
                item["call_id"],
                item["entry"]["leaf_index"],
                item["recorded_at"],
                int(body["status"]),
                str(body["outcome"]),
                bool(item["retained"]),
            )
        )
    return calls, listing.next_cursor is not None
