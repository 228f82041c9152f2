"""The owner's human-in-the-loop controls under ``/v1``: approvals, the notification webhook,
and the autonomy level.

HTTP only; the rules live in ``authority.approvals.decisions``,
``authority.approvals.webhooks`` and ``authority.management.autonomy``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.approvals import decisions
from authority.approvals import webhook_registration as registration
from authority.management import agents, autonomy
from authority.management.auth import READERS, WRITERS

from .guard import endpoint
from .rest import PAGING, as_view, caller, listing, ok, page_of, path_param, read_model


# --- approvals ------------------------------------------------------------------------------
@endpoint
async def list_approvals(request: Request) -> Response:
    services, principal = await caller(request, READERS, PAGING | {"status", "agent_id"})
    page = page_of(request, services, decisions.KIND)
    params = request.query_params
    result = await decisions.list_approvals(
        services, principal, page, status=params.get("status"), agent_id=params.get("agent_id")
    )
    return listing(result)


@endpoint
async def get_approval(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    approval = await decisions.get(services, principal, path_param(request, "approval_id"))
    return ok(as_view(approval))


@endpoint
async def approve(request: Request) -> Response:
    services, principal = await caller(request, decisions.APPROVERS)
    body = await read_model(request, services, decisions.Decision, optional=True)
    approval_id = path_param(request, "approval_id")
    return ok(as_view(await decisions.approve(services, principal, approval_id, body)))


@endpoint
async def deny(request: Request) -> Response:
    services, principal = await caller(request, decisions.DENIERS)
    body = await read_model(request, services, decisions.Decision, optional=True)
    approval_id = path_param(request, "approval_id")
    return ok(as_view(await decisions.deny(services, principal, approval_id, body)))


# --- the owner's webhook -------------------------------------------------------------------------
@endpoint
async def get_webhook(request: Request) -> Response:
    services, principal = await caller(request, READERS)
    hook = await registration.get_webhook(services, principal, path_param(request, "owner_id"))
    return ok(as_view(hook))


@endpoint
async def set_webhook(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, registration.WebhookSet)
    owner_id = path_param(request, "owner_id")
    issued = await registration.set_webhook(services, principal, owner_id, body)
    # The secret is shown here, once; only its sealed form is kept.
    return ok({**as_view(issued.webhook), "secret": issued.secret})


@endpoint
async def delete_webhook(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    hook = await registration.delete_webhook(services, principal, path_param(request, "owner_id"))
    return ok(as_view(hook))


# --- autonomy -------------------------------------------------------------------------------
@endpoint
async def set_autonomy(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, autonomy.AutonomyBody)
    agent = await agents.set_autonomy_level(
        services, principal, path_param(request, "agent_id"), body
    )
    return ok(as_view(agent))


routes = [
    Route("/v1/approvals", list_approvals, methods=["GET"]),
    Route("/v1/approvals/{approval_id}", get_approval, methods=["GET"]),
    Route("/v1/approvals/{approval_id}/approve", approve, methods=["POST"]),
    Route("/v1/approvals/{approval_id}/deny", deny, methods=["POST"]),
    Route("/v1/owners/{owner_id}/webhook", get_webhook, methods=["GET"]),
    Route("/v1/owners/{owner_id}/webhook", set_webhook, methods=["PUT"]),
    Route("/v1/owners/{owner_id}/webhook", delete_webhook, methods=["DELETE"]),
    Route("/v1/agents/{agent_id}/autonomy", set_autonomy, methods=["POST"]),
]
