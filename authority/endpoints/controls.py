"""The owner's controls under ``/v1``: quarantine and release an agent, the kill switch.

HTTP only; the rules (who may, what changes, what is recorded) are in
``authority.management.controls``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.management import controls
from authority.management.auth import WRITERS

from .guard import endpoint
from .rest import as_view, caller, ok, path_param, read_model


@endpoint
async def quarantine_agent(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, controls.QuarantineBody)
    agent = await controls.quarantine(services, principal, path_param(request, "agent_id"), body)
    return ok(as_view(agent))


@endpoint
async def release_agent(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, controls.ReleaseBody, optional=True)
    agent = await controls.release(services, principal, path_param(request, "agent_id"), body)
    return ok(as_view(agent))


@endpoint
async def kill_switch(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, controls.KillBody)
    killed = await controls.kill(services, principal, path_param(request, "owner_id"), body)
    return ok(as_view(killed))


routes = [
    Route("/v1/agents/{agent_id}/quarantine", quarantine_agent, methods=["POST"]),
    Route("/v1/agents/{agent_id}/release", release_agent, methods=["POST"]),
    Route("/v1/owners/{owner_id}/kill", kill_switch, methods=["POST"]),
]
