"""An agent's baseline and its promotion proposals (``authority.behaviour``,
``authority.promotion``): HTTP only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority import behaviour, promotion
from authority.management.auth import READERS, WRITERS

from .guard import endpoint
from .rest import as_view, caller, ok, path_param


@endpoint
async def get_baseline(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    shown = await behaviour.view(services, principal, path_param(request, "agent_id"))
    return ok(as_view(shown))


@endpoint
async def list_promotions(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    found = await promotion.list_proposals(services, principal, path_param(request, "agent_id"))
    return ok({"items": [as_view(p) for p in found], "next_cursor": None})


@endpoint
async def accept_promotion(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    accepted = await promotion.accept(
        services,
        principal,
        path_param(request, "agent_id"),
        path_param(request, "proposal_id"),
    )
    return ok(as_view(accepted))


routes = [
    Route("/v1/agents/{agent_id}/baseline", get_baseline, methods=["GET"]),
    Route("/v1/agents/{agent_id}/promotions", list_promotions, methods=["GET"]),
    Route(
        "/v1/agents/{agent_id}/promotions/{proposal_id}/accept",
        accept_promotion,
        methods=["POST"],
    ),
]
