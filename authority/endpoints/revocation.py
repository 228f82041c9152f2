"""The revocation endpoint (RFC 7009 §2) for agents and resource servers.

POST with a form body (RFC 7009 §2.1); a query string is refused before the body is
read. Success is 200 with an empty body (§2.2: "The content of the response body is
ignored by the client"), also for tokens that are unknown or already dead.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.context import Services
from authority.grants.revocation import RevocationRequest, revoke

from . import forms, paths
from .credentials import client_credentials
from .guard import endpoint
from .http import NO_STORE, read_form


@endpoint
async def revocation(request: Request) -> Response:
    services: Services = request.app.state.services
    form = await read_form(
        request, services.settings.max_body_bytes, schema=(forms.RevocationForm,)
    )
    parsed = RevocationRequest(
        credentials=client_credentials(request, form),
        token=form.get("token"),
        endpoint_url=services.settings.issuer + paths.REVOCATION,
    )
    with services.tracing.span("authority.revocation"):
        await revoke(services, parsed)
    return Response(b"", 200, NO_STORE)


routes = [Route(paths.REVOCATION, revocation, methods=["POST"])]
