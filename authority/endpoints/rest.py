"""What every JSON API endpoint under ``/v1`` does the same way: authenticate the API key
and check its role, refuse unknown query parameters, read a strict JSON body, and render
``no-store`` JSON (lists as ``{"items", "next_cursor"}``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, TypeVar

from starlette.requests import Request

from authority.context import Services
from authority.errors import InvalidRequest, UnsupportedMediaType
from authority.management import paging
from authority.management.auth import Principal, Role, authenticate, require_role
from authority.management.inputs import Body, parse

from .http import NO_STORE, JSONResponse, json_response, read_body, read_json

M = TypeVar("M", bound=Body)
PAGING = frozenset({"limit", "cursor"})


# --- request side ---------------------------------------------------------------------------
async def caller(
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


def page_of(request: Request, services: Services, kind: str) -> paging.PageRequest:
    params = request.query_params
    return paging.page_request(
        services, kind, limit=params.get("limit"), cursor=params.get("cursor")
    )


async def read_model(
    request: Request, services: Services, model: type[M], *, optional: bool = False
) -> M:
    limit = services.settings.max_body_bytes
    if optional and "content-type" not in request.headers:
        if await read_body(request, limit):
            raise UnsupportedMediaType("The body must be application/json.")
        return parse(model, {})
    return parse(model, await read_json(request, limit))


def path_param(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    return value


# --- response side --------------------------------------------------------------------------
def as_view(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = dataclasses.asdict(obj)
    return result


def ok(content: Any) -> JSONResponse:
    return json_response(content, 200, NO_STORE)


def created_response(location: str, content: Any) -> JSONResponse:
    return json_response(content, 201, {**NO_STORE, "Location": location})


def listing(page: paging.Page[Any]) -> JSONResponse:
    return ok({"items": [as_view(item) for item in page.items], "next_cursor": page.next_cursor})
