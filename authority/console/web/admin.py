"""The admin's pages: tools, resource servers, signing keys, and the console's people.

Every change goes through the management layer (``management.tools``,
``management.resource_servers``, the keyring, ``console.people``) as the admin person
(``console:<person>``), so it is recorded as the API's changes are. A secret (a resource
server's client secret, a person's enrolment link) is shown once, on the page that
makes it, and never again.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.console import people
from authority.console.sessions import Signed
from authority.context import Services
from authority.errors import Conflict, InvalidRequest
from authority.management import owners, paging, resource_servers, tools
from authority.management.auth import Principal
from authority.management.inputs import parse
from authority.storage.console import Role
from authority.tokens.keys import KeyringError

from .http import Form, page, read_form, redirect, services_of, signed_in, view

ADMIN: Final[tuple[Role, ...]] = ("admin",)
DONE: Final = {
    "tool": "The tool is saved.",
    "retired": "Retired.",
    "rotated": "A new signing key is published; it signs once its activation time comes.",
    "person": "The person is retired: their sessions have ended.",
}


def _all(services: Services) -> paging.PageRequest:
    return paging.PageRequest(services.settings.page_size_max, None)


def _list(form: Form, name: str) -> list[str]:
    return [v.strip() for v in (form.get(name) or "").replace("\n", ",").split(",") if v.strip()]


def _tier(form: Form) -> int:
    tier = form.require("risk_tier")
    if tier not in ("0", "1", "2", "3"):
        raise InvalidRequest("The risk tier is 0, 1, 2 or 3.")
    return int(tier)


async def _admin(request: Request) -> tuple[Signed, Principal, Services]:
    signed = await signed_in(request, ADMIN)
    return signed, people.principal(signed.person), services_of(request)


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


# --- tools ----------------------------------------------------------------------------------
@view
async def tools_page(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    listed = await tools.list_tools(services, principal, _all(services))
    servers = await resource_servers.list_servers(services, principal, _all(services))
    context = {
        "tools": listed.items,
        "servers": [s for s in servers.items if s.status == "active"],
        "server_names": {s.id: s.name for s in servers.items},
        "notice": _done(request),
    }
    return page(request, "admin/tools.html", context, signed=signed)


@view
async def create_tool(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    form = await read_form(request, signed.session.id)
    lifetime = form.get("max_token_lifetime")
    if lifetime is not None and not (
        lifetime.isascii() and lifetime.isdigit() and len(lifetime) < 7
    ):
        raise InvalidRequest("The token lifetime is a number of seconds.")
    body = parse(
        tools.ToolCreate,
        {
            "name": form.require("name"),
            "resource_server_id": form.require("resource_server_id"),
            "actions": _list(form, "actions"),
            "read_actions": _list(form, "read_actions"),
            "risk_tier": _tier(form),
            "approval_required": form.get("approval_required") == "on",
            "single_use": form.get("single_use") == "on",
            "dpop_required": form.get("dpop_required") == "on",
            "max_token_lifetime": int(lifetime) if lifetime is not None else None,
        },
    )
    await tools.create(services, principal, body)
    return redirect("/console/admin/tools?done=tool")


@view
async def update_tool(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    form = await read_form(request, signed.session.id)
    body = parse(
        tools.ToolUpdate,
        {"risk_tier": _tier(form), "approval_required": form.get("approval_required") == "on"},
    )
    await tools.update_tool(services, principal, request.path_params["tool_id"], body)
    return redirect("/console/admin/tools?done=tool")


@view
async def retire_tool(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    await read_form(request, signed.session.id)
    await tools.retire(services, principal, request.path_params["tool_id"])
    return redirect("/console/admin/tools?done=retired")


# --- resource servers -----------------------------------------------------------------------
@view
async def servers_page(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    listed = await resource_servers.list_servers(services, principal, _all(services))
    context = {"servers": listed.items, "notice": _done(request), "issued": None}
    return page(request, "admin/servers.html", context, signed=signed)


async def _issued_page(request: Request, signed: Signed, issued: Any) -> Response:
    _, principal, services = await _admin(request)
    listed = await resource_servers.list_servers(services, principal, _all(services))
    context = {"servers": listed.items, "notice": None, "issued": issued}
    return page(request, "admin/servers.html", context, signed=signed, status=201)


@view
async def create_server(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    form = await read_form(request, signed.session.id)
    method = form.get("auth_method") or "client_secret_basic"
    if method not in ("client_secret_basic", "client_secret_post"):
        raise InvalidRequest("Choose how the server authenticates.")
    body = parse(
        resource_servers.ServerCreate,
        {"name": form.require("name"), "audience": form.require("audience"), "auth_method": method},
    )
    issued = await resource_servers.create(services, principal, body)
    return await _issued_page(request, signed, issued)


@view
async def rotate_server_secret(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    await read_form(request, signed.session.id)
    issued = await resource_servers.rotate_secret(
        services, principal, request.path_params["server_id"]
    )
    return await _issued_page(request, signed, issued)


@view
async def retire_server(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    await read_form(request, signed.session.id)
    await resource_servers.retire(services, principal, request.path_params["server_id"])
    return redirect("/console/admin/servers?done=retired")


# --- signing keys ---------------------------------------------------------------------------
@view
async def keys_page(request: Request) -> Response:
    signed, _, services = await _admin(request)
    keys = await services.keyring.list_keys()
    context = {
        "keys": sorted(keys, key=lambda k: (k.purpose, k.created_at), reverse=True),
        "notice": _done(request),
        "now": services.now(),
        "delay": services.settings.key_activation_delay,
    }
    return page(request, "admin/keys.html", context, signed=signed)


@view
async def rotate_key(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    form = await read_form(request, signed.session.id)
    purpose = form.require("purpose")
    if purpose not in ("token", "ledger"):
        raise InvalidRequest("Choose the token or the ledger key.")
    try:
        await services.keyring.rotate(
            "token" if purpose == "token" else "ledger", actor=principal.key_id
        )
    except KeyringError:
        raise Conflict("A rotation of this key is already under way.") from None
    return redirect("/console/admin/keys?done=rotated")


# --- people ---------------------------------------------------------------------------------
@view
async def people_page(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    return await _people(request, signed, principal, services, None)


async def _people(
    request: Request, signed: Signed, principal: Principal, services: Services, issued: Any
) -> Response:
    listed = await owners.list_owners(services, principal, _all(services))
    context = {
        "people": await people.list_people(services, principal),
        "owners": [o for o in listed.items if o.status != "retired"],
        "owner_names": {o.id: o.name for o in listed.items},
        "issued": issued,
        "notice": _done(request),
    }
    return page(request, "admin/people.html", context, signed=signed, status=201 if issued else 200)


@view
async def create_person(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    form = await read_form(request, signed.session.id)
    role = form.require("role")
    values: dict[str, Any] = {"name": form.require("name"), "role": role}
    if role == "owner":
        values["owner_id"] = form.require("owner_id")
    issued = await people.create(services, principal, parse(people.PersonCreate, values))
    return await _people(request, signed, principal, services, issued)


@view
async def new_link(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    await read_form(request, signed.session.id)
    issued = await people.enrol_again(services, principal, request.path_params["person_id"])
    return await _people(request, signed, principal, services, issued)


@view
async def retire_person(request: Request) -> Response:
    signed, principal, services = await _admin(request)
    await read_form(request, signed.session.id)
    await people.retire(services, principal, request.path_params["person_id"])
    return redirect("/console/admin/people?done=person")


routes = [
    Route("/admin/tools", tools_page, methods=["GET"]),
    Route("/admin/tools", create_tool, methods=["POST"]),
    Route("/admin/tools/{tool_id}", update_tool, methods=["POST"]),
    Route("/admin/tools/{tool_id}/retire", retire_tool, methods=["POST"]),
    Route("/admin/servers", servers_page, methods=["GET"]),
    Route("/admin/servers", create_server, methods=["POST"]),
    Route("/admin/servers/{server_id}/secret", rotate_server_secret, methods=["POST"]),
    Route("/admin/servers/{server_id}/retire", retire_server, methods=["POST"]),
    Route("/admin/keys", keys_page, methods=["GET"]),
    Route("/admin/keys/rotate", rotate_key, methods=["POST"]),
    Route("/admin/people", people_page, methods=["GET"]),
    Route("/admin/people", create_person, methods=["POST"]),
    Route("/admin/people/{person_id}/enrolment", new_link, methods=["POST"]),
    Route("/admin/people/{person_id}/retire", retire_person, methods=["POST"]),
]
