"""The owner's pages: pending approvals, the kill switch, and what happened.

Approving a call and pulling the kill switch each need a fresh passkey assertion for
exactly that action (``ceremonies.confirm``), and are done as
``console:<person>+passkey``; denying is always safe and needs only the session. The
decisions are the management layer's (``approvals.decisions``, ``management.controls``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority import metrics, promotion
from authority.approvals import decisions
from authority.console import activity, ceremonies, people
from authority.console.sessions import Signed
from authority.context import Services
from authority.errors import InvalidRequest
from authority.management import agents, controls, paging
from authority.management.auth import Principal
from authority.management.inputs import parse
from authority.storage.console import Role

from .http import (
    Form,
    format_time,
    json_answer,
    page,
    read_form,
    redirect,
    services_of,
    signed_in,
    view,
)

OWNER: Final[tuple[Role, ...]] = ("owner",)
#: What a finished action says on the next page: fixed texts, never the input.
DONE: Final = {
    "approved": "Approved: the agent's next poll gets its token.",
    "denied": "Denied: the agent's next poll is refused.",
    "quarantined": "The agent is quarantined.",
    "released": "The agent is released.",
    "revoked": "The delegation is revoked: every token under it is inactive.",
    "autonomy": "The autonomy level is set.",
    "promoted": "Promotion accepted: the agent's autonomy level is one up.",
}


def notice(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _first_page(request: Request, kind: str) -> paging.PageRequest:
    return paging.page_request(services_of(request), kind, limit=None, cursor=None)


async def agent_names(request: Request, signed: Signed) -> dict[str, str]:
    services = services_of(request)
    principal = people.principal(signed.person)
    page_request = paging.PageRequest(services.settings.page_size_max, None)
    listed = await agents.list_agents(services, principal, page_request)
    return {agent.id: agent.name for agent in listed.items}


@dataclass(frozen=True, slots=True)
class SteppedUp:
    """A request for an action that needs a fresh passkey, its confirmation checked."""

    signed: Signed
    services: Services
    form: Form
    target: str
    #: The person as the management layer sees them, passkey-confirmed.
    principal: Principal


async def stepped_up(request: Request, action: str, target: str | None = None) -> SteppedUp:
    """Sign-in, the CSRF-checked form, and the passkey confirmation of ``action`` on
    ``target`` (a path parameter's name; None: the owner's own id, for the kill switch),
    from the same person and session, once (``ceremonies.confirm``)."""
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    form = await read_form(request, signed.session.id)
    subject = (signed.person.owner_id or "") if target is None else request.path_params[target]
    await ceremonies.confirm(
        services,
        signed.session.id,
        signed.person,
        ceremonies.action(action, subject),
        form.get("passkey"),
    )
    confirmed = people.principal(signed.person, confirmed=True)
    return SteppedUp(signed, services, form, subject, confirmed)


def _reason(form: Any) -> dict[str, str]:
    reason = form.get("reason")
    return {"reason": reason} if reason is not None else {}


# --- approvals ------------------------------------------------------------------------------
@view
async def approvals_page(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    principal = people.principal(signed.person)
    pending = await decisions.list_approvals(
        services, principal, _first_page(request, decisions.KIND), status="pending"
    )
    names = await agent_names(request, signed)
    # Promotions proposed for the owner's agents: accepting one raises the agent's level.
    proposed = [
        p
        for agent_id in names
        for p in await promotion.list_proposals(services, principal, agent_id)
        if p.status == "proposed"
    ]
    context = {
        "pending": pending.items,
        "names": names,
        "promotions": proposed,
        "notice": notice(request),
        "now": services.now(),
    }
    return page(request, "owner/approvals.html", context, signed=signed)


@view
async def accept_promotion(request: Request) -> Response:
    """Accepting a promotion needs a fresh passkey, as approving a call does."""
    step = await stepped_up(request, "promote", "proposal_id")
    agent_id = request.path_params["agent_id"]
    await promotion.accept(step.services, step.principal, agent_id, step.target)
    return redirect("/console/owner/approvals?done=promoted")


@view
async def approve(request: Request) -> Response:
    step = await stepped_up(request, "approve", "approval_id")
    body = parse(decisions.Decision, _reason(step.form))
    await decisions.approve(step.services, step.principal, step.target, body)
    return redirect("/console/owner/approvals?done=approved")


@view
async def deny(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    form = await read_form(request, signed.session.id)
    body = parse(decisions.Decision, _reason(form))
    await decisions.deny(
        services_of(request),
        people.principal(signed.person),
        request.path_params["approval_id"],
        body,
    )
    return redirect("/console/owner/approvals?done=denied")


# --- the kill switch ------------------------------------------------------------------------
@view
async def kill_page(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    owner_id = signed.person.owner_id or ""
    names = await agent_names(request, signed)
    context = {
        "owner_id": owner_id,
        "agent_count": len(names),
        "kills": await activity.kills(services, owner_id),
        "result": None,
    }
    return page(request, "owner/kill.html", context, signed=signed)


@view
async def kill(request: Request) -> Response:
    step = await stepped_up(request, "kill")
    signed, services, owner_id = step.signed, step.services, step.target
    reason = step.form.get("reason")
    if reason is None:
        raise InvalidRequest("Say why: the reason is recorded in the ledger.")
    body = parse(controls.KillBody, {"reason": reason})
    killed = await controls.kill(services, step.principal, owner_id, body)
    # From the request's arrival to every agent and delegation stopped; the containment
    # itself (every instance refusing) committed at ``contained_at``, before the cascade.
    stopped_ms = (time.perf_counter() - metrics.request_started()) * 1000
    context = {
        "owner_id": owner_id,
        "agent_count": len(killed.quarantined_agents),
        "kills": await activity.kills(services, owner_id),
        "result": killed,
        "stopped_ms": stopped_ms,
    }
    return page(request, "owner/kill.html", context, signed=signed)


# --- what happened --------------------------------------------------------------------------
@view
async def activity_page(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    recent = await activity.recent(services, signed.person.owner_id or "")
    context = {"activity": recent, "names": await agent_names(request, signed)}
    return page(request, "owner/activity.html", context, signed=signed)


@view
async def events(request: Request) -> Response:
    """New containment events after a leaf index, for ``static/live.js``."""
    signed = await signed_in(request, OWNER)
    raw = request.query_params.get("after", "")
    if not (raw.lstrip("-").isdigit() and len(raw) <= 19):
        raise InvalidRequest("The after parameter must be a leaf index.")
    found, last = await activity.containment_since(
        services_of(request), signed.person.owner_id or "", int(raw)
    )
    items = [
        {
            "leaf_index": e.leaf_index,
            "time": format_time(e.time),
            "kind": e.kind,
            "summary": e.summary,
        }
        for e in found
    ]
    return json_answer({"items": items, "next": last})


routes = [
    Route("/owner/approvals", approvals_page, methods=["GET"]),
    Route("/owner/approvals/{approval_id}/approve", approve, methods=["POST"]),
    Route("/owner/approvals/{approval_id}/deny", deny, methods=["POST"]),
    Route(
        "/owner/agents/{agent_id}/promotions/{proposal_id}/accept",
        accept_promotion,
        methods=["POST"],
    ),
    Route("/owner/kill", kill_page, methods=["GET"]),
    Route("/owner/kill", kill, methods=["POST"]),
    Route("/owner/activity", activity_page, methods=["GET"]),
    Route("/owner/events.json", events, methods=["GET"]),
]
