"""The owner's agents and delegations: status, autonomy, keys, quarantine; grant and revoke.

A delegation is granted in two steps: the form, then a consent page that shows exactly
what the agent will be allowed (intent, tool, resources, actions, caps, expiry) and
grants only that. Its credential is shown once, on the page that creates it. Releasing
a quarantine and revoking a delegation need a fresh passkey assertion for that action;
quarantining (taking away) needs only the session.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.console import activity, people
from authority.console.sessions import Signed
from authority.context import Services
from authority.errors import InvalidRequest
from authority.grants import delegations
from authority.management import agents, autonomy, changes, controls, paging, tools
from authority.management.inputs import parse

from .http import Form, page, read_form, redirect, services_of, signed_in, view
from .owner import OWNER, agent_names, notice, stepped_up

#: Lifetimes offered for a new delegation, seconds, as the form names them.
LIFETIMES: Final = {"3600": "1 hour", "86400": "1 day", "604800": "7 days", "2592000": "30 days"}


def _everything(services: Services) -> paging.PageRequest:
    return paging.PageRequest(services.settings.page_size_max, None)


def _keys(agent: agents.Agent) -> list[dict[str, str]]:
    if agent.jwks is None:  # proves itself by workload identity only
        return []
    try:
        return changes.key_refs(agent.jwks)
    except ValueError:
        return []


# --- agents ---------------------------------------------------------------------------------
@view
async def agents_page(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    listed = await agents.list_agents(
        services, people.principal(signed.person), _everything(services)
    )
    rows = [
        {
            "agent": a,
            "keys": _keys(a),
            "levels": await activity.autonomy_history(services, a.id),
        }
        for a in listed.items
    ]
    context = {"rows": rows, "notice": notice(request), "levels": range(4)}
    return page(request, "owner/agents.html", context, signed=signed)


@view
async def quarantine(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    form = await read_form(request, signed.session.id)
    body = parse(controls.QuarantineBody, {"reason": form.require("reason")})
    await controls.quarantine(
        services_of(request), people.principal(signed.person), request.path_params["agent_id"], body
    )
    return redirect("/console/owner/agents?done=quarantined")


@view
async def release(request: Request) -> Response:
    step = await stepped_up(request, "release", "agent_id")
    reason = step.form.get("reason")
    body = parse(controls.ReleaseBody, {"reason": reason} if reason else {})
    await controls.release(step.services, step.principal, step.target, body)
    return redirect("/console/owner/agents?done=released")


@view
async def set_autonomy(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    form = await read_form(request, signed.session.id)
    level = form.require("level")
    if level not in ("0", "1", "2", "3"):
        raise InvalidRequest("The level must be 0, 1, 2 or 3.")
    body = parse(autonomy.AutonomyBody, {"level": int(level)})
    await agents.set_autonomy_level(
        services_of(request), people.principal(signed.person), request.path_params["agent_id"], body
    )
    return redirect("/console/owner/agents?done=autonomy")


# --- delegations ----------------------------------------------------------------------------
@view
async def delegations_page(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    listed = await delegations.list_page(
        services, people.principal(signed.person), _everything(services), None
    )
    context = {
        "delegations": listed.items[::-1],
        "names": await agent_names(request, signed),
        "notice": notice(request),
        "now": services.now(),
    }
    return page(request, "owner/delegations.html", context, signed=signed)


async def _form_context(request: Request, signed: Signed) -> dict[str, Any]:
    services = services_of(request)
    principal = people.principal(signed.person)
    listed = await agents.list_agents(services, principal, _everything(services))
    offered = await tools.list_tools(services, principal, _everything(services))
    return {
        "agents": [a for a in listed.items if a.status == "active"],
        "tools": [t for t in offered.items if t.status == "active"],
        "lifetimes": LIFETIMES,
    }


@view
async def new_delegation(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    context = {**await _form_context(request, signed), "given": {}}
    return page(request, "owner/delegation_new.html", context, signed=signed)


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


def _optional_count(form: Form, name: str) -> int | None:
    raw = form.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        raise InvalidRequest(f"The {name} field must be a whole number.")
    return int(raw)


def _requested(form: Form) -> tuple[delegations.CreateDelegation, dict[str, Any]]:
    """The delegation the form asks for, checked as the API checks it, and the form's
    values to carry to the next step."""
    lifetime = form.require("expires_in")
    if lifetime not in LIFETIMES:
        raise InvalidRequest("Choose one of the lifetimes offered.")
    given = {
        "agent_id": form.require("agent_id"),
        "intent": form.require("intent"),
        "tool": form.require("tool"),
        "resources": "\n".join(_lines(form.get("resources"))),
        "actions": "\n".join(_lines(form.get("actions"))),
        "expires_in": lifetime,
        "max_calls": form.get("max_calls") or "",
        "rate_per_minute": form.get("rate_per_minute") or "",
    }
    body = parse(
        delegations.CreateDelegation,
        {
            "agent_id": given["agent_id"],
            "intent": given["intent"],
            "scope": [
                {
                    "tool": given["tool"],
                    "resources": _lines(given["resources"]),
                    "actions": _lines(given["actions"]),
                }
            ],
            "expires_in": int(lifetime),
            "max_calls": _optional_count(form, "max_calls"),
            "rate_per_minute": _optional_count(form, "rate_per_minute"),
        },
    )
    return body, given


@view
async def review_delegation(request: Request) -> Response:
    """The consent page: exactly what the agent will be allowed, before it is."""
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    form = await read_form(request, signed.session.id)
    body, given = _requested(form)
    names = await agent_names(request, signed)
    if body.agent_id not in names:
        raise InvalidRequest("Choose one of your agents.")
    context = {
        "body": body,
        "given": given,
        "agent_name": names[body.agent_id],
        "expires_at": services.now() + body.expires_in,
        "lifetime": LIFETIMES[given["expires_in"]],
    }
    return page(request, "owner/delegation_review.html", context, signed=signed)


@view
async def create_delegation(request: Request) -> Response:
    signed = await signed_in(request, OWNER)
    services = services_of(request)
    form = await read_form(request, signed.session.id)
    body, _ = _requested(form)
    created = await delegations.create(services, people.principal(signed.person), body)
    context = {
        "delegation": created.delegation,
        "credential": created.credential,
        "names": await agent_names(request, signed),
    }
    return page(request, "owner/delegation_created.html", context, signed=signed, status=201)


@view
async def revoke_delegation(request: Request) -> Response:
    step = await stepped_up(request, "revoke", "delegation_id")
    reason = step.form.get("reason")
    body = parse(delegations.RevokeDelegation, {"reason": reason} if reason else {})
    await delegations.revoke(step.services, step.principal, step.target, body)
    return redirect("/console/owner/delegations?done=revoked")


routes = [
    Route("/owner/agents", agents_page, methods=["GET"]),
    Route("/owner/agents/{agent_id}/quarantine", quarantine, methods=["POST"]),
    Route("/owner/agents/{agent_id}/release", release, methods=["POST"]),
    Route("/owner/agents/{agent_id}/autonomy", set_autonomy, methods=["POST"]),
    Route("/owner/delegations", delegations_page, methods=["GET"]),
    Route("/owner/delegations/new", new_delegation, methods=["GET"]),
    Route("/owner/delegations/review", review_delegation, methods=["POST"]),
    Route("/owner/delegations", create_delegation, methods=["POST"]),
    Route("/owner/delegations/{delegation_id}/revoke", revoke_delegation, methods=["POST"]),
]
