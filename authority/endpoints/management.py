"""The management API under ``/v1``: owners, API keys, agents, tools, resource servers.

HTTP only: authenticate the bearer API key (RFC 6750), check the query and body, call one
domain function in ``authority.management``, render JSON. Who may do what is decided in
the domain; the role check here only answers 403 before a body is even read.

Creation answers 201 with a ``Location``; DELETE retires (the row stays); lists page with
``?limit=&cursor=`` and answer ``{"items": [...], "next_cursor": ...}``. Responses are
never cached: some carry a secret shown once, all carry what only the caller may see.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.context import Services
from authority.errors import InvalidRequest, UnsupportedMediaType
from authority.management import agents, api_keys, owners, paging, resource_servers, tools
from authority.management.auth import (
    ADMIN,
    READERS,
    SEE_ALL,
    WRITERS,
    Principal,
    Role,
    authenticate,
    require_role,
)
from authority.management.inputs import Body, parse

from .guard import endpoint
from .http import NO_STORE, JSONResponse, json_response, read_body, read_json

M = TypeVar("M", bound=Body)
PAGING = frozenset({"limit", "cursor"})


# --- request side ---------------------------------------------------------------------------
async def _caller(
    request: Request, roles: Collection[Role], query: Collection[str] = ()
) -> tuple[Services, Principal]:
    """Authenticate, check the role, and refuse query parameters the route does not take."""
    services: Services = request.app.state.services
    principal = await authenticate(request)
    require_role(principal, *roles)
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in query:
            raise InvalidRequest("The request has an unknown query parameter.")
        if name in seen:
            raise InvalidRequest("A query parameter is included more than once.")
        seen.add(name)
    return services, principal


def _page(request: Request, services: Services, kind: str) -> paging.PageRequest:
    params = request.query_params
    return paging.page_request(
        services, kind, limit=params.get("limit"), cursor=params.get("cursor")
    )


async def _body(
    request: Request, services: Services, model: type[M], *, optional: bool = False
) -> M:
    limit = services.settings.max_body_bytes
    if optional and "content-type" not in request.headers:
        if await read_body(request, limit):
            raise UnsupportedMediaType("The body must be application/json.")
        return parse(model, {})
    return parse(model, await read_json(request, limit))


def _path(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    return value


# --- response side --------------------------------------------------------------------------
def _view(obj: Any) -> dict[str, Any]:
    view: dict[str, Any] = dataclasses.asdict(obj)
    return view


def _ok(content: Any) -> JSONResponse:
    return json_response(content, 200, NO_STORE)


def _created(location: str, content: Any) -> JSONResponse:
    return json_response(content, 201, {**NO_STORE, "Location": location})


def _list(page: paging.Page[Any]) -> JSONResponse:
    return _ok({"items": [_view(item) for item in page.items], "next_cursor": page.next_cursor})


def _issued_key(issued: api_keys.IssuedKey, location: str) -> JSONResponse:
    return _created(location, {**_view(issued.key), "api_key": issued.secret})


def _issued_secret(issued: resource_servers.IssuedSecret) -> dict[str, Any]:
    view = _view(issued.server)
    if issued.client_secret is not None:
        view["client_secret"] = issued.client_secret
    return view


# --- who am I ---------------------------------------------------------------------------------
@endpoint
async def me(request: Request) -> Response:
    _, principal = await _caller(request, READERS)
    return _ok(_view(principal))


# --- owners -----------------------------------------------------------------------------------
@endpoint
async def create_owner(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    body = await _body(request, services, owners.OwnerCreate)
    owner = await owners.create(services, principal, body)
    return _created(f"/v1/owners/{owner.id}", _view(owner))


@endpoint
async def list_owners(request: Request) -> Response:
    services, principal = await _caller(request, SEE_ALL, PAGING)
    page = _page(request, services, owners.KIND)
    return _list(await owners.list_owners(services, principal, page))


@endpoint
async def get_owner(request: Request) -> Response:
    services, principal = await _caller(request, READERS)
    return _ok(_view(await owners.get(services, principal, _path(request, "owner_id"))))


@endpoint
async def update_owner(request: Request) -> Response:
    services, principal = await _caller(request, WRITERS)
    body = await _body(request, services, owners.OwnerUpdate)
    owner = await owners.update_owner(services, principal, _path(request, "owner_id"), body)
    return _ok(_view(owner))


@endpoint
async def retire_owner(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    return _ok(_view(await owners.retire(services, principal, _path(request, "owner_id"))))


# --- API keys ---------------------------------------------------------------------------------
@endpoint
async def create_owner_key(request: Request) -> Response:
    services, principal = await _caller(request, WRITERS)
    body = await _body(request, services, api_keys.OwnerKeyCreate, optional=True)
    owner_id = _path(request, "owner_id")
    issued = await api_keys.create_for_owner(services, principal, owner_id, body)
    return _issued_key(issued, f"/v1/owners/{owner_id}/api-keys/{issued.key.id}")


@endpoint
async def list_owner_keys(request: Request) -> Response:
    services, principal = await _caller(request, READERS, PAGING)
    page = _page(request, services, api_keys.KIND)
    owner_id = _path(request, "owner_id")
    return _list(await api_keys.list_keys(services, principal, page, owner_id))


@endpoint
async def get_owner_key(request: Request) -> Response:
    services, principal = await _caller(request, READERS)
    key_id, owner_id = _path(request, "key_id"), _path(request, "owner_id")
    return _ok(_view(await api_keys.get(services, principal, key_id, owner_id)))


@endpoint
async def revoke_owner_key(request: Request) -> Response:
    services, principal = await _caller(request, WRITERS)
    key_id, owner_id = _path(request, "key_id"), _path(request, "owner_id")
    return _ok(_view(await api_keys.revoke(services, principal, key_id, owner_id)))


@endpoint
async def create_key(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    body = await _body(request, services, api_keys.KeyCreate)
    issued = await api_keys.create(services, principal, body)
    return _issued_key(issued, f"/v1/api-keys/{issued.key.id}")


@endpoint
async def list_keys(request: Request) -> Response:
    services, principal = await _caller(request, SEE_ALL, PAGING)
    page = _page(request, services, api_keys.KIND)
    return _list(await api_keys.list_keys(services, principal, page))


@endpoint
async def get_key(request: Request) -> Response:
    services, principal = await _caller(request, SEE_ALL)
    return _ok(_view(await api_keys.get(services, principal, _path(request, "key_id"))))


@endpoint
async def revoke_key(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    return _ok(_view(await api_keys.revoke(services, principal, _path(request, "key_id"))))


# --- agents -----------------------------------------------------------------------------------
@endpoint
async def create_agent(request: Request) -> Response:
    services, principal = await _caller(request, WRITERS)
    body = await _body(request, services, agents.AgentCreate)
    agent = await agents.create(services, principal, body)
    return _created(f"/v1/agents/{agent.id}", _view(agent))


@endpoint
async def list_agents(request: Request) -> Response:
    services, principal = await _caller(request, READERS, PAGING)
    page = _page(request, services, agents.KIND)
    return _list(await agents.list_agents(services, principal, page))


@endpoint
async def get_agent(request: Request) -> Response:
    services, principal = await _caller(request, READERS)
    return _ok(_view(await agents.get(services, principal, _path(request, "agent_id"))))


@endpoint
async def update_agent(request: Request) -> Response:
    services, principal = await _caller(request, WRITERS)
    body = await _body(request, services, agents.AgentUpdate)
    agent = await agents.update_agent(services, principal, _path(request, "agent_id"), body)
    return _ok(_view(agent))


@endpoint
async def retire_agent(request: Request) -> Response:
    services, principal = await _caller(request, WRITERS)
    return _ok(_view(await agents.retire(services, principal, _path(request, "agent_id"))))


# --- tools ------------------------------------------------------------------------------------
@endpoint
async def create_tool(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    body = await _body(request, services, tools.ToolCreate)
    tool = await tools.create(services, principal, body)
    return _created(f"/v1/tools/{tool.id}", _view(tool))


@endpoint
async def list_tools(request: Request) -> Response:
    services, principal = await _caller(request, READERS, PAGING)
    page = _page(request, services, tools.KIND)
    return _list(await tools.list_tools(services, principal, page))


@endpoint
async def get_tool(request: Request) -> Response:
    services, principal = await _caller(request, READERS)
    return _ok(_view(await tools.get(services, principal, _path(request, "tool_id"))))


@endpoint
async def update_tool(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    body = await _body(request, services, tools.ToolUpdate)
    tool = await tools.update_tool(services, principal, _path(request, "tool_id"), body)
    return _ok(_view(tool))


@endpoint
async def retire_tool(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    return _ok(_view(await tools.retire(services, principal, _path(request, "tool_id"))))


# --- resource servers -------------------------------------------------------------------------
@endpoint
async def create_server(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    body = await _body(request, services, resource_servers.ServerCreate)
    issued = await resource_servers.create(services, principal, body)
    return _created(f"/v1/resource-servers/{issued.server.id}", _issued_secret(issued))


@endpoint
async def list_servers(request: Request) -> Response:
    services, principal = await _caller(request, READERS, PAGING)
    page = _page(request, services, resource_servers.KIND)
    return _list(await resource_servers.list_servers(services, principal, page))


@endpoint
async def get_server(request: Request) -> Response:
    services, principal = await _caller(request, READERS)
    server = await resource_servers.get(services, principal, _path(request, "server_id"))
    return _ok(_view(server))


@endpoint
async def update_server(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    body = await _body(request, services, resource_servers.ServerUpdate)
    server_id = _path(request, "server_id")
    return _ok(_view(await resource_servers.update_server(services, principal, server_id, body)))


@endpoint
async def rotate_server_secret(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    server_id = _path(request, "server_id")
    issued = await resource_servers.rotate_secret(services, principal, server_id)
    return _ok(_issued_secret(issued))


@endpoint
async def retire_server(request: Request) -> Response:
    services, principal = await _caller(request, ADMIN)
    server = await resource_servers.retire(services, principal, _path(request, "server_id"))
    return _ok(_view(server))


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
]
