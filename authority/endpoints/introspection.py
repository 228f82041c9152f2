"""The introspection endpoint (RFC 7662 §2) for authenticated resource servers.

POST only, form body only: RFC 7662 §2.1 ("the protected resource calls the
introspection endpoint using an HTTP POST request with parameters sent as
application/x-www-form-urlencoded"), and a token in a query string is refused before the
body is read (``read_form``). Every answer is ``Cache-Control: no-store``; an inactive
answer is the same bytes whatever the reason.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authority.context import Services
from authority.grants.introspection import INACTIVE, IntrospectionRequest, introspect

from . import forms, paths
from .credentials import client_credentials
from .guard import DirectRoute, endpoint
from .http import NO_STORE, json_response, read_form

INACTIVE_BODY = b'{"active":false}'


@endpoint
async def introspection(request: Request) -> Response:
    services: Services = request.app.state.services
    form = await read_form(
        request, services.settings.max_body_bytes, schema=(forms.IntrospectionForm,)
    )
    parsed = IntrospectionRequest(
        credentials=client_credentials(request, form),
        token=form.get("token"),
        endpoint_url=services.settings.issuer + paths.INTROSPECTION,
    )
    with services.tracing.span("authority.introspection"):
        answer = await introspect(services, parsed)
    if answer is INACTIVE:
        return Response(INACTIVE_BODY, 200, NO_STORE, media_type="application/json")
    return json_response(answer, 200, NO_STORE)


routes = [DirectRoute(paths.INTROSPECTION, introspection, methods=["POST"])]
