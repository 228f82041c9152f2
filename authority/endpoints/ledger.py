"""The auditor's ledger API (RFC 9162 §5 in JSON): entries, export, checkpoints, proofs, keys.

HTTP only: authenticate an auditor or admin API key (RFC 6750), parse the query, read
through the ledger's port (``storage.ledger_reader``) or compute a proof over it
(``authority.ledger.store``), render JSON. Hashes are unpadded base64url.

* ``GET /v1/ledger/entries``: sequenced entries, filtered, paged by leaf index.
* ``GET /v1/ledger/export``: JSON Lines ``{"leaf_index", "leaf_hash", "body"}``, streamed
  in keyset batches; by default up to the latest checkpoint, so that what is exported
  can be checked against a signed tree head.
* ``GET /v1/ledger/checkpoint`` (latest) and ``GET /v1/ledger/checkpoints`` (all, paged).
* ``GET /v1/ledger/proofs/inclusion`` and ``/v1/ledger/proofs/consistency``: RFC 9162
  §2.1.3 and §2.1.4 proofs.
* ``GET /v1/ledger/keys``: the JWK Set of every ledger key ever used, without auth (the
  same keys are in the public JWKS; retired ledger keys stay published for good).

Bad parameters are 400 ``invalid_request``; nothing here answers 5xx for bad input.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from authority.context import Services
from authority.errors import InvalidRequest, NotFound
from authority.ledger import store
from authority.ledger.checkpoints import encode_hash
from authority.ledger.merkle import MAX_TREE_SIZE
from authority.ledger.schemas import KINDS
from authority.management.auth import Role
from authority.storage.ledger_reader import Checkpoint, EntryFilter, SequencedEntry

from . import paths
from .guard import endpoint
from .http import NO_STORE, json_response
from .rest import caller

JSON_LINES = "application/jsonl"
_INTEGER = re.compile(r"^[0-9]{1,19}$")
_FILTER_VALUE_MAX = 2048
ENTRY_FILTERS = ("agent", "owner", "delegation", "tool", "decision", "kind", "since", "until")
PAGING = ("limit", "cursor")
DECISIONS = frozenset({"issued", "denied", "pending", "approved"})


# --- request side ---------------------------------------------------------------------------
#: The ledger is the auditors' (and admins'); owners see their own objects elsewhere.
AUDITORS: tuple[Role, ...] = ("auditor", "admin")


async def _auditor(request: Request, query: Collection[str]) -> Services:
    services, _ = await caller(request, AUDITORS, query)
    return services


def _count(request: Request, name: str, *, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not _INTEGER.match(raw) or not minimum <= int(raw) <= MAX_TREE_SIZE:
        raise InvalidRequest(f"The {name} parameter must be an integer of at least {minimum}.")
    return int(raw)


def _required_count(request: Request, name: str, *, minimum: int = 0) -> int:
    value = _count(request, name, minimum=minimum)
    if value is None:
        raise InvalidRequest(f"The {name} parameter is missing.")
    return value


MAX_TIME = 2**62  # far beyond any real time, well inside a signed 64-bit column


def _time(request: Request, name: str) -> int | None:
    """Unix seconds, or an RFC 3339 date-time with its offset."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    invalid = InvalidRequest(
        f"The {name} parameter must be Unix seconds or an RFC 3339 date-time with offset."
    )
    if _INTEGER.match(raw):
        # Times are stored as signed 64-bit integers: anything larger cannot be bound.
        if int(raw) > MAX_TIME:
            raise invalid
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw) if len(raw) <= 40 else None
        seconds = int(moment.timestamp()) if moment is not None else None
    except (ValueError, OverflowError, OSError):
        raise invalid from None
    if moment is None or moment.tzinfo is None or seconds is None or abs(seconds) > MAX_TIME:
        raise invalid
    return seconds


def _text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > _FILTER_VALUE_MAX:
        raise InvalidRequest(f"The {name} parameter is too long.")
    return raw


def _limit(request: Request, services: Services) -> int:
    value = _count(request, "limit", minimum=1)
    if value is None:
        return services.settings.page_size_default
    return min(value, services.settings.page_size_max)


def _filters(request: Request) -> EntryFilter:
    decision, kind = _text(request, "decision"), _text(request, "kind")
    if decision is not None and decision not in DECISIONS:
        raise InvalidRequest("The decision parameter is not a known decision.")
    if kind is not None and kind not in KINDS:
        raise InvalidRequest("The kind parameter is not a known entry kind.")
    since, until = _time(request, "since"), _time(request, "until")
    if since is not None and until is not None and since > until:
        raise InvalidRequest("The since parameter is after until.")
    return EntryFilter(
        agent_id=_text(request, "agent"),
        owner_id=_text(request, "owner"),
        delegation_id=_text(request, "delegation"),
        tool=_text(request, "tool"),
        decision=decision,
        kind=kind,
        since=since,
        until=until,
    )


# --- rendering ------------------------------------------------------------------------------
def _checkpoint(row: Checkpoint) -> dict[str, Any]:
    return {
        "tree_size": row.tree_size,
        "root_hash": encode_hash(row.root_hash),
        "created_at": row.created_at,
        "kid": row.kid,
        "signed": row.signed,
    }


def _entry(entry: SequencedEntry) -> dict[str, Any]:
    return {
        "leaf_index": entry.leaf_index,
        "leaf_hash": encode_hash(entry.leaf_hash),
        "entry": orjson.loads(entry.body),
    }


# --- handlers -------------------------------------------------------------------------------
@endpoint
async def list_entries(request: Request) -> Response:
    services = await _auditor(request, (*ENTRY_FILTERS, *PAGING))
    filters = _filters(request)
    limit = _limit(request, services)
    after = _count(request, "cursor")
    rows = await services.ledger_reader.entries(filters, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "items": [_entry(row) for row in rows],
            "next_cursor": str(rows[-1].leaf_index) if more and rows else None,
        },
        headers=NO_STORE,
    )


@endpoint
async def export(request: Request) -> Response:
    services = await _auditor(request, ("start", "end"))
    start = _count(request, "start") or 0
    end = _count(request, "end")
    ledger = services.ledger_reader
    if end is None:
        latest = await ledger.latest_checkpoint()
        end = 0 if latest is None else latest.tree_size
    elif end > await ledger.tree_size():
        raise InvalidRequest("The end parameter is beyond the ledger's tree size.")
    if start > end:
        raise InvalidRequest("The start parameter is after end.")

    async def lines() -> AsyncIterator[bytes]:
        async for entry in ledger.export(start=start, end=end):
            yield store.export_line(entry)

    return StreamingResponse(
        lines(),
        media_type=JSON_LINES,
        headers={**NO_STORE, "Ledger-Tree-Size": str(end)},
    )


@endpoint
async def latest_checkpoint(request: Request) -> Response:
    services = await _auditor(request, ())
    row = await services.ledger_reader.latest_checkpoint()
    if row is None:
        raise NotFound("The ledger has no checkpoint yet.")
    return json_response(_checkpoint(row), headers=NO_STORE)


@endpoint
async def list_checkpoints(request: Request) -> Response:
    services = await _auditor(request, PAGING)
    limit = _limit(request, services)
    after = _count(request, "cursor")
    rows = await services.ledger_reader.checkpoints(after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "items": [_checkpoint(row) for row in rows],
            "next_cursor": str(rows[-1].tree_size) if more and rows else None,
        },
        headers=NO_STORE,
    )


@endpoint
async def inclusion_proof(request: Request) -> Response:
    services = await _auditor(request, ("leaf_index", "tree_size"))
    index = _required_count(request, "leaf_index")
    size = _required_count(request, "tree_size", minimum=1)
    if index >= size:
        raise InvalidRequest("The leaf_index must be below tree_size.")
    try:
        proof = await store.inclusion_proof(services.ledger_reader, index, size)
    except store.NoSuchTreeSize:
        raise InvalidRequest("The tree_size is beyond the ledger's tree size.") from None
    return json_response(
        {
            "leaf_index": proof.leaf_index,
            "tree_size": proof.tree_size,
            "leaf_hash": encode_hash(proof.leaf_hash),
            "inclusion_path": [encode_hash(h) for h in proof.path],
            "root_hash": encode_hash(proof.root_hash),
        },
        headers=NO_STORE,
    )


@endpoint
async def consistency_proof(request: Request) -> Response:
    services = await _auditor(request, ("first", "second"))
    first = _required_count(request, "first", minimum=1)
    second = _required_count(request, "second", minimum=1)
    if first > second:
        raise InvalidRequest("The first tree size must not exceed the second.")
    try:
        proof = await store.consistency_proof(services.ledger_reader, first, second)
    except store.NoSuchTreeSize:
        raise InvalidRequest("The second tree size is beyond the ledger's.") from None
    return json_response(
        {
            "first": proof.first,
            "second": proof.second,
            "consistency_path": [encode_hash(h) for h in proof.path],
            "first_root_hash": encode_hash(proof.first_root),
            "second_root_hash": encode_hash(proof.second_root),
        },
        headers=NO_STORE,
    )


@endpoint
async def keys(request: Request) -> Response:
    services: Services = request.app.state.services
    if request.query_params:
        raise InvalidRequest("The request has an unknown query parameter.")
    return json_response(
        services.keyring.jwks(purpose="ledger"),
        headers={"Cache-Control": f"public, max-age={services.settings.jwks_max_age}"},
    )


routes = [
    Route(paths.LEDGER_ENTRIES, list_entries, methods=["GET"]),
    Route(paths.LEDGER_EXPORT, export, methods=["GET"]),
    Route(paths.LEDGER_CHECKPOINT, latest_checkpoint, methods=["GET"]),
    Route(paths.LEDGER_CHECKPOINTS, list_checkpoints, methods=["GET"]),
    Route(paths.LEDGER_INCLUSION_PROOF, inclusion_proof, methods=["GET"]),
    Route(paths.LEDGER_CONSISTENCY_PROOF, consistency_proof, methods=["GET"]),
    Route(paths.LEDGER_KEYS, keys, methods=["GET"]),
]
