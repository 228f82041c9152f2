"""The Cedar policy's versions under ``/v1/policies``, and the dry run of one call.

HTTP only; the rules (who may, what is checked, what is recorded) are in
``authority.management.policies`` and ``authority.management.policy_dry_run``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.management import policies, policy_dry_run
from authority.management.auth import ADMIN, SEE_ALL, WRITERS

from .guard import endpoint
from .rest import as_view, caller, created_response, ok, path_param, read_model


@endpoint
async def list_versions(request: Request) -> Response:
    services, _ = await caller(request, SEE_ALL)
    items = await policies.listing(services)
    return ok({"items": [as_view(item) for item in items], "next_cursor": None})


@endpoint
async def active_version(request: Request) -> Response:
    services, _ = await caller(request, SEE_ALL)
    return ok(as_view(await policies.active(services)))


@endpoint
async def get_version(request: Request) -> Response:
    services, _ = await caller(request, SEE_ALL)
    number = policies.version_number(path_param(request, "version"))
    return ok(as_view(await policies.get(services, number)))


@endpoint
async def create_version(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    body = await read_model(request, services, policies.PolicyCreate)
    stored = await policies.create(services, principal, body)
    return created_response(f"/v1/policies/{stored.version}", as_view(stored))


@endpoint
async def activate_version(request: Request) -> Response:
    services, principal = await caller(request, ADMIN)
    number = policies.version_number(path_param(request, "version"))
    return ok(as_view(await policies.activate(services, principal, number)))


@endpoint
async def dry_run(request: Request) -> Response:
    services, principal = await caller(request, WRITERS)
    body = await read_model(request, services, policy_dry_run.DryRunBody)
    return ok(as_view(await policy_dry_run.dry_run(services, principal, body)))


routes = [
    Route("/v1/policies", list_versions, methods=["GET"]),
    Route("/v1/policies", create_version, methods=["POST"]),
    Route("/v1/policies/active", active_version, methods=["GET"]),
    Route("/v1/policies/dry-run", dry_run, methods=["POST"]),
    Route("/v1/policies/{version}", get_version, methods=["GET"]),
    Route("/v1/policies/{version}/activate", activate_version, methods=["POST"]),
]
