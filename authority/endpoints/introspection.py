"""The introspection endpoint (RFC 7662 §2) for authenticated resource servers.

POST only, form body only: RFC 7662 §2.1 ("the protected resource calls the
introspection endpoint using an HTTP POST request with parameters sent as
application/x-www-form-urlencoded"), and a token in a query string is refused before the
body is read (``read_form``). Every answer is ``Cache-Control: no-store``; an inactive
answer is the same bytes whatever the reason.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from authority.context import Services
from authority.grants.introspection import INACTIVE, IntrospectionRequest, introspect

from . import forms, paths
from .credentials import client_credentials
from .guard import DirectRoute, endpoint
from .http import NoStoreJSON, read_form

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
        return NoStoreJSON(INACTIVE_BODY)
    return NoStoreJSON(orjson.dumps(answer))


routes = [DirectRoute(paths.INTROSPECTION, introspection, methods=["POST"])]
