"""Delegations under ``/v1/delegations``: an owner grants, reads, lists and revokes.

HTTP only; the rules live in ``authority.grants.delegations``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.grants import delegations
from authority.management.auth import READERS, WRITERS, Role

from .guard import endpoint
from .rest import PAGING, caller, created_response, ok, page_of, path_param, read_model

#: Only an owner delegates: an admin cannot grant on an owner's behalf.
OWNER_ONLY: tuple[Role, ...] = ("owner",)


@endpoint
async def create_delegation(request: Request) -> Response:
    services, principal = await caller(request, OWNER_ONLY)
    body = await read_model(request, services, delegations.CreateDelegation)
    created = await delegations.create(services, principal, body)
    view = {**created.delegation, "credential": created.credential}
    return created_response(f"/v1/delegations/{created.delegation['id']}", view)


@endpoint
async def list_delegations(request: Request) -> Response:
    services, principal = await caller(request, READERS, PAGING | {"agent_id"})
    page = page_of(request, services, delegations.KIND)
    agent_id = request.query_params.get("agent_id")
    result = await delegations.list_page(services, principal, page, agent_id)
    return ok({"items": result.items, "next_cursor": result.next_cursor})


@endpoint
async def get_delegation(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    return ok(await delegations.get(services, principal, path_param(request, "delegation_id")))


@endpoint
async def revoke_delegation(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, delegations.RevokeDelegation, optional=True)
    delegation_id = path_param(request, "delegation_id")
    return ok(await delegations.revoke(services, principal, delegation_id, body))


routes = [
    Route("/v1/delegations", list_delegations, methods=["GET"]),
    Route("/v1/delegations", create_delegation, methods=["POST"]),
    Route("/v1/delegations/{delegation_id}", get_delegation, methods=["GET"]),
    Route("/v1/delegations/{delegation_id}/revoke", revoke_delegation, methods=["POST"]),
]
