"""The auditor's pages: the ledger by filter, one entry with its proof checked, the
checkpoints with the commands that verify everything offline, and charts.

For auditors and admins, as the ledger API is. Filters are the API's (owner, agent,
delegation, tool, kind, decision, time) and the denial reason, which only the body
holds (``audit.entries`` scans a bounded number of entries for it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.console import audit, charts
from authority.console import recordings as recorded
from authority.errors import InvalidRequest, NotFound
from authority.ledger.schemas import KINDS
from authority.storage.console import Role
from authority.storage.ledger_reader import EntryFilter

from .http import page, services_of, signed_in, view

AUDITORS: Final[tuple[Role, ...]] = ("auditor", "admin")
FILTERS: Final = (
    "owner",
    "agent",
    "delegation",
    "tool",
    "kind",
    "decision",
    "reason",
    "since",
    "until",
)
DECISIONS: Final = ("issued", "denied", "pending", "approved")
PAGE: Final = 50
_MAX_TIME: Final = 2**62


def _text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    if len(raw) > 2048:
        raise InvalidRequest(f"The {name} filter is too long.")
    return raw


def _time(request: Request, name: str) -> int | None:
    raw = _text(request, name)
    if raw is None:
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= _MAX_TIME:
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw) if len(raw) <= 40 else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidRequest(f"The {name} filter must be a date and time, or Unix seconds.")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the form's datetime-local fields are UTC
    return int(moment.timestamp())


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("cursor", "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
        raise InvalidRequest("The cursor is invalid.")
    return int(raw)


@view
async def ledger_page(request: Request) -> Response:
    signed = await signed_in(request, AUDITORS)
    services = services_of(request)
    kind, decision = _text(request, "kind"), _text(request, "decision")
    if kind is not None and kind not in KINDS:
        raise InvalidRequest("The kind filter is not a known entry kind.")
    if decision is not None and decision not in DECISIONS:
        raise InvalidRequest("The decision filter is not a known decision.")
    since, until = _time(request, "since"), _time(request, "until")
    filters = EntryFilter(
        owner_id=_text(request, "owner"),
        agent_id=_text(request, "agent"),
        delegation_id=_text(request, "delegation"),
        tool=_text(request, "tool"),
        kind=kind,
        decision=decision,
        since=since,
        until=until,
    )
    found = await audit.entries(
        services, filters, reason=_text(request, "reason"), after=_cursor(request), limit=PAGE
    )
    given = {name: request.query_params.get(name, "") for name in FILTERS}
    context = {
        "page": found,
        "given": given,
        "kinds": sorted(KINDS),
        "decisions": DECISIONS,
        "scan_limit": audit.SCAN_LIMIT,
        "next_query": {k: v for k, v in given.items() if v},
    }
    return page(request, "audit/ledger.html", context, signed=signed)


@view
async def entry_page(request: Request) -> Response:
    signed = await signed_in(request, AUDITORS)
    services = services_of(request)
    raw = request.path_params["leaf_index"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
        raise NotFound("No such entry.")
    row = await audit.entry(services, int(raw))
    if row is None:
        raise NotFound("No such entry.")
    proof = await audit.check_inclusion(services, row.leaf_index, row.raw)
    recording, calls, more_calls = None, None, False
    if row.kind == "gateway_call":
        recording = await recorded.of_call(services, row.body)
    elif row.kind == "grant" and row.body.get("decision") == "issued":
        calls, more_calls = await recorded.of_grant(services, str(row.body["grant_id"]))
    context = {
        "row": row,
        "proof": proof,
        "recording": recording,
        "calls": calls,
        "more_calls": more_calls,
        "grant_calls": recorded.GRANT_CALLS,
    }
    return page(request, "audit/entry.html", context, signed=signed)


@view
async def checkpoints_page(request: Request) -> Response:
    signed = await signed_in(request, AUDITORS)
    services = services_of(request)
    reader = services.ledger_reader
    listed = await reader.checkpoints(after=_cursor(request), limit=PAGE + 1)
    context = {
        "latest": await reader.latest_checkpoint(),
        "checkpoints": listed[:PAGE],
        "next_cursor": listed[PAGE - 1].tree_size if len(listed) > PAGE else None,
        "issuer": services.settings.issuer,
        "tree_size": await reader.tree_size(),
    }
    return page(request, "audit/checkpoints.html", context, signed=signed)


@view
async def charts_page(request: Request) -> Response:
    signed = await signed_in(request, AUDITORS)
    context = {"charts": await charts.all_charts(services_of(request))}
    return page(request, "audit/charts.html", context, signed=signed)


routes = [
    Route("/ledger", ledger_page, methods=["GET"]),
    Route("/ledger/{leaf_index}", entry_page, methods=["GET"]),
    Route("/checkpoints", checkpoints_page, methods=["GET"]),
    Route("/charts", charts_page, methods=["GET"]),
]
