"""Direct routes (``endpoints.guard``): the HTTP edge calls one only where the router would
have, and only a guarded handler, which lets no exception out to the layers it skips."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Mount, Route

from authority.endpoints.guard import DirectRoute, direct_routes, endpoint
from authority.endpoints.request_log import RequestLog


@endpoint
async def guarded(request: Request) -> Response:
    return PlainTextResponse("direct:" + request.scope["route"].path)


async def plain(request: Request) -> Response:
    return PlainTextResponse("routed")


def test_only_a_guarded_handler_on_a_fixed_path_can_be_direct() -> None:
    with pytest.raises(TypeError):
        DirectRoute("/x", plain, methods=["POST"])
    with pytest.raises(ValueError, match="parameters"):
        DirectRoute("/x/{id}", guarded, methods=["POST"])


def test_a_direct_route_is_taken_only_where_the_router_would_take_it() -> None:
    direct = DirectRoute("/d", guarded, methods=["POST"])
    assert direct_routes([direct]) == {("POST", "/d"): direct}
    # An earlier route matching the same path and method wins at the router: not direct.
    shadow = Route("/{anything}", plain, methods=["POST"])
    assert direct_routes([shadow, direct]) == {}
    # One for another method only leaves the direct route its own.
    other = Route("/d", plain, methods=["GET"])
    assert direct_routes([other, direct]) == {("POST", "/d"): direct}
    # A mount over the path wins too.
    assert direct_routes([Mount("/", routes=[]), direct]) == {}
    # After a route matched on more than path and method, nothing is direct.
    assert direct_routes([Host("h.test", app=PlainTextResponse("host")), direct]) == {}


def app_of(routes: list[BaseRoute]) -> Starlette:
    return Starlette(routes=routes, middleware=[Middleware(RequestLog, routes=routes)])


async def post(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post(path, **kwargs)


async def test_the_edge_answers_as_the_router_would() -> None:
    direct = DirectRoute("/d", guarded, methods=["POST"])
    response = await post(app_of([direct]), "/d")
    assert (response.status_code, response.text) == (200, "direct:/d")
    assert response.headers["x-request-id"]
    # Shadowed: the router's choice, not the direct route.
    shadowed = app_of([Route("/{anything}", plain, methods=["POST"]), direct])
    assert (await post(shadowed, "/d")).text == "routed"
