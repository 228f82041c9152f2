"""The management API under ``/v1``: owners, API keys, agents, tools, resource servers.

HTTP only: authenticate the bearer API key (RFC 6750), check the query and body, call one
domain function in ``authority.management``, render JSON. Who may do what is decided in
the domain; the role check here only answers 403 before a body is even read.

Creation answers 201 with a ``Location``; DELETE retires (the row stays); lists page with
``?limit=&cursor=`` and answer ``{"items": [...], "next_cursor": ...}``. Responses are
never cached: some carry a secret shown once, all carry what only the caller may see.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.management import agents, api_keys, owners, resource_servers, tools, trust_domains
from authority.management.auth import (
    ADMIN,
    READERS,
    SEE_ALL,
    WRITERS,
)

from .guard import endpoint
from .http import JSONResponse
from .rest import (
    PAGING,
    as_view,
    caller,
    created_response,
    listing,
    ok,
    page_of,
    path_param,
    read_model,
)


def _issued_key(issued: api_keys.IssuedKey, location: str) -> JSONResponse:
    return created_response(location, {**as_view(issued.key), "api_key": issued.secret})


def _issued_secret(issued: resource_servers.IssuedSecret) -> dict[str, Any]:
    view = as_view(issued.server)
    if issued.client_secret is not None:
        view["client_secret"] = issued.client_secret
    return view


# --- who am I ---------------------------------------------------------------------------------
@endpoint
async def me(request: Request) -> Response:
    _, principal = await caller(request, READERS)
    return ok(as_view(principal))


# --- owners -----------------------------------------------------------------------------------
@endpoint
async def create_owner(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, owners.OwnerCreate)
    owner = await owners.create(services, principal, body)
    return created_response(f"/v1/owners/{owner.id}", as_view(owner))


@endpoint
async def list_owners(request: Request) -> Response:
    services, principal = await caller(request, SEE_ALL, PAGING)
    page = page_of(request, services, owners.KIND)
    return listing(await owners.list_owners(services, principal, page))


@endpoint
async def get_owner(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    return ok(as_view(await owners.get(services, principal, path_param(request, "owner_id"))))


@endpoint
async def update_owner(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, owners.OwnerUpdate)
    owner = await owners.update_owner(services, principal, path_param(request, "owner_id"), body)
    return ok(as_view(owner))


@endpoint
async def retire_owner(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    return ok(as_view(await owners.retire(services, principal, path_param(request, "owner_id"))))


# --- API keys ---------------------------------------------------------------------------------
@endpoint
async def create_owner_key(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, api_keys.OwnerKeyCreate, optional=True)
    owner_id = path_param(request, "owner_id")
    issued = await api_keys.create_for_owner(services, principal, owner_id, body)
    return _issued_key(issued, f"/v1/owners/{owner_id}/api-keys/{issued.key.id}")


@endpoint
async def list_owner_keys(request: Request) -> Response:
    services, principal = await caller(request, READERS, PAGING)
    page = page_of(request, services, api_keys.KIND)
    owner_id = path_param(request, "owner_id")
    return listing(await api_keys.list_keys(services, principal, page, owner_id))


@endpoint
async def get_owner_key(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    key_id, owner_id = path_param(request, "key_id"), path_param(request, "owner_id")
    return ok(as_view(await api_keys.get(services, principal, key_id, owner_id)))


@endpoint
async def revoke_owner_key(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    key_id, owner_id = path_param(request, "key_id"), path_param(request, "owner_id")
    return ok(as_view(await api_keys.revoke(services, principal, key_id, owner_id)))


@endpoint
async def create_key(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, api_keys.KeyCreate)
    issued = await api_keys.create(services, principal, body)
    return _issued_key(issued, f"/v1/api-keys/{issued.key.id}")


@endpoint
async def list_keys(request: Request) -> Response:
    services, principal = await caller(request, SEE_ALL, PAGING)
    page = page_of(request, services, api_keys.KIND)
    return listing(await api_keys.list_keys(services, principal, page))


@endpoint
async def get_key(request: Request) -> Response:
    services, principal = await caller(request, SEE_ALL)
    return ok(as_view(await api_keys.get(services, principal, path_param(request, "key_id"))))


@endpoint
async def revoke_key(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    return ok(as_view(await api_keys.revoke(services, principal, path_param(request, "key_id"))))


# --- agents -----------------------------------------------------------------------------------
@endpoint
async def create_agent(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, agents.AgentCreate)
    agent = await agents.create(services, principal, body)
    return created_response(f"/v1/agents/{agent.id}", as_view(agent))


@endpoint
async def list_agents(request: Request) -> Response:
    services, principal = await caller(request, READERS, PAGING)
    page = page_of(request, services, agents.KIND)
    return listing(await agents.list_agents(services, principal, page))


@endpoint
async def get_agent(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    return ok(as_view(await agents.get(services, principal, path_param(request, "agent_id"))))


@endpoint
async def update_agent(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, agents.AgentUpdate)
    agent = await agents.update_agent(services, principal, path_param(request, "agent_id"), body)
    return ok(as_view(agent))


@endpoint
async def retire_agent(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    return ok(as_view(await agents.retire(services, principal, path_param(request, "agent_id"))))


# --- tools ------------------------------------------------------------------------------------
@endpoint
async def create_tool(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, tools.ToolCreate)
    tool = await tools.create(services, principal, body)
    return created_response(f"/v1/tools/{tool.id}", as_view(tool))


@endpoint
async def list_tools(request: Request) -> Response:
    services, principal = await caller(request, READERS, PAGING)
    page = page_of(request, services, tools.KIND)
    return listing(await tools.list_tools(services, principal, page))


@endpoint
async def get_tool(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    return ok(as_view(await tools.get(services, principal, path_param(request, "tool_id"))))


@endpoint
async def update_tool(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, tools.ToolUpdate)
    tool = await tools.update_tool(services, principal, path_param(request, "tool_id"), body)
    return ok(as_view(tool))


@endpoint
async def retire_tool(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    return ok(as_view(await tools.retire(services, principal, path_param(request, "tool_id"))))


# --- resource servers -------------------------------------------------------------------------
@endpoint
async def create_server(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, resource_servers.ServerCreate)
    issued = await resource_servers.create(services, principal, body)
    return created_response(f"/v1/resource-servers/{issued.server.id}", _issued_secret(issued))


@endpoint
async def list_servers(request: Request) -> Response:
    services, principal = await caller(request, READERS, PAGING)
    page = page_of(request, services, resource_servers.KIND)
    return listing(await resource_servers.list_servers(services, principal, page))


@endpoint
async def get_server(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    server = await resource_servers.get(services, principal, path_param(request, "server_id"))
    return ok(as_view(server))


@endpoint
async def update_server(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, resource_servers.ServerUpdate)
    server_id = path_param(request, "server_id")
    return ok(as_view(await resource_servers.update_server(services, principal, server_id, body)))


@endpoint
async def rotate_server_secret(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    server_id = path_param(request, "server_id")
    issued = await resource_servers.rotate_secret(services, principal, server_id)
    return ok(_issued_secret(issued))


@endpoint
async def retire_server(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    server = await resource_servers.retire(services, principal, path_param(request, "server_id"))
    return ok(as_view(server))


# --- trust domains ----------------------------------------------------------------------------
@endpoint
async def create_domain(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, trust_domains.TrustDomainCreate)
    domain = await trust_domains.create(services, principal, body)
    return created_response(f"/v1/trust-domains/{domain.id}", as_view(domain))


@endpoint
async def list_domains(request: Request) -> Response:
    services, principal = await caller(request, READERS, PAGING)
    page = page_of(request, services, trust_domains.KIND)
    return listing(await trust_domains.list_domains(services, principal, page))


@endpoint
async def get_domain(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    domain = await trust_domains.get(services, principal, path_param(request, "domain_id"))
    return ok(as_view(domain))


@endpoint
async def update_domain(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, trust_domains.TrustDomainUpdate)
    domain_id = path_param(request, "domain_id")
    return ok(as_view(await trust_domains.update_domain(services, principal, domain_id, body)))


routes = [
    Route("/v1/me", me, methods=["GET"]),
    Route("/v1/owners", list_owners, methods=["GET"]),
    Route("/v1/owners", create_owner, methods=["POST"]),
    Route("/v1/owners/{owner_id}", get_owner, methods=["GET"]),
    Route("/v1/owners/{owner_id}", update_owner, methods=["PATCH"]),
    Route("/v1/owners/{owner_id}", retire_owner, methods=["DELETE"]),
    Route("/v1/owners/{owner_id}/api-keys", list_owner_keys, methods=["GET"]),
    Route("/v1/owners/{owner_id}/api-keys", create_owner_key, methods=["POST"]),
    Route("/v1/owners/{owner_id}/api-keys/{key_id}", get_owner_key, methods=["GET"]),
    Route("/v1/owners/{owner_id}/api-keys/{key_id}", revoke_owner_key, methods=["DELETE"]),
    Route("/v1/api-keys", list_keys, methods=["GET"]),
    Route("/v1/api-keys", create_key, methods=["POST"]),
    Route("/v1/api-keys/{key_id}", get_key, methods=["GET"]),
    Route("/v1/api-keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/v1/agents", list_agents, methods=["GET"]),
    Route("/v1/agents", create_agent, methods=["POST"]),
    Route("/v1/agents/{agent_id}", get_agent, methods=["GET"]),
    Route("/v1/agents/{agent_id}", update_agent, methods=["PATCH"]),
    Route("/v1/agents/{agent_id}", retire_agent, methods=["DELETE"]),
    Route("/v1/tools", list_tools, methods=["GET"]),
    Route("/v1/tools", create_tool, methods=["POST"]),
    Route("/v1/tools/{tool_id}", get_tool, methods=["GET"]),
    Route("/v1/tools/{tool_id}", update_tool, methods=["PATCH"]),
    Route("/v1/tools/{tool_id}", retire_tool, methods=["DELETE"]),
    Route("/v1/resource-servers", list_servers, methods=["GET"]),
    Route("/v1/resource-servers", create_server, methods=["POST"]),
    Route("/v1/resource-servers/{server_id}", get_server, methods=["GET"]),
    Route("/v1/resource-servers/{server_id}", update_server, methods=["PATCH"]),
    Route("/v1/resource-servers/{server_id}", retire_server, methods=["DELETE"]),
    Route("/v1/resource-servers/{server_id}/secret", rotate_server_secret, methods=["POST"]),
    Route("/v1/trust-domains", list_domains, methods=["GET"]),
    Route("/v1/trust-domains", create_domain, methods=["POST"]),
    Route("/v1/trust-domains/{domain_id}", get_domain, methods=["GET"]),
    Route("/v1/trust-domains/{domain_id}", update_domain, methods=["PATCH"]),
]
