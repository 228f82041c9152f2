"""The auditor's view of recorded calls: the ledger entry with the unsealed heads.

One recording as JSON (what ``GET /v1/recordings/{call_id}`` answers and
``authority ledger verify --recordings`` reads back):

``{"call_id", "gateway", "grant_id", "jti", "recorded_at", "retained_until", "retained",
"entry": {"leaf_index", "leaf_hash", "body"}, "request_head", "response_head",
"unreadable"}``

``entry.body`` is the ledger entry's canonical body verbatim, as a string, so that its
bytes survive; ``leaf_index`` and ``leaf_hash`` are null until the sequencer has placed
it. Heads are unpadded base64url, null when the call had no such body or once past
retention. A sealed head that does not open (another instance secret, or an altered
row) is null and named in ``unreadable``: never silently absent.

A recording past retention is not served, whether or not the sweeper has deleted its
heads yet (404 with a message that says so); listed, it shows ``retained: false`` and no
heads, so the calls of a grant stay countable.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from authority.context import Services
from authority.errors import NotFound
from authority.ledger.checkpoints import encode_hash
from authority.management import paging
from authority.storage.recordings import StoredRecording

from .sealing import Side
from .sweeper import DAY, retained_after

log = logging.getLogger("authority.recordings")

PAGE_KIND = "recordings"
UNKNOWN = "No such recording."
PAST_RETENTION = (
    "The recording is past retention (recording_retention): its bodies were deleted; "
    "its gateway_call ledger entry remains."
)


def encode_head(head: bytes) -> str:
    return base64.urlsafe_b64encode(head).rstrip(b"=").decode()


def _retained(services: Services, stored: StoredRecording, now: int) -> bool:
    return stored.swept_at is None and stored.created_at >= retained_after(services, now)


def _open(
    services: Services, stored: StoredRecording, side: Side, unreadable: list[str]
) -> str | None:
    sealed = stored.request_head if side == "request" else stored.response_head
    if sealed is None:
        return None
    opened = services.recording_sealer.open(sealed, call_id=stored.id, side=side)
    if opened is None:
        log.error("the sealed %s head of call %s does not open", side, stored.id)
        unreadable.append(f"{side}_head")
        return None
    return encode_head(opened)


def view(services: Services, stored: StoredRecording, now: int) -> dict[str, Any]:
    retained = _retained(services, stored, now)
    unreadable: list[str] = []
    request = _open(services, stored, "request", unreadable) if retained else None
    response = _open(services, stored, "response", unreadable) if retained else None
    return {
        "call_id": stored.id,
        "gateway": stored.server_id,
        "grant_id": stored.grant_id,
        "jti": stored.jti,
        "recorded_at": stored.created_at,
        "retained_until": stored.created_at + services.settings.recording_retention * DAY,
        "retained": retained,
        "entry": {
            "leaf_index": stored.leaf_index,
            "leaf_hash": None if stored.leaf_hash is None else encode_hash(stored.leaf_hash),
            "body": stored.entry_body,
        },
        "request_head": request,
        "response_head": response,
        "unreadable": unreadable,
    }


async def recording(services: Services, call_id: str) -> dict[str, Any]:
    """One retained recording; 404 for an unknown call and one past retention."""
    now = services.now()
    stored = await services.recording_store.get(call_id)
    if stored is None:
        raise NotFound(UNKNOWN)
    if not _retained(services, stored, now):
        raise NotFound(PAST_RETENTION)
    return view(services, stored, now)


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[dict[str, Any]]
    next_cursor: str | None


async def of_grant(
    services: Services, *, grant_id: str | None, jti: str | None, page: paging.PageRequest
) -> Listing:
    """The recordings of one grant (by its id or its token's jti), oldest first."""
    now = services.now()
    rows = await services.recording_store.of_grant(
        grant_id=grant_id, jti=jti, after=page.after, limit=page.limit + 1
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    cursor = (
        paging.encode_cursor(services, PAGE_KIND, rows[-1].created_at, rows[-1].id)
        if more and rows
        else None
    )
    return Listing([view(services, row, now) for row in rows], cursor)
