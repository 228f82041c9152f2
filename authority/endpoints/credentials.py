"""Client credentials as an HTTP request carries them, for ``grants.client_auth``."""

from __future__ import annotations

from starlette.requests import Request

from authority.errors import InvalidRequest
from authority.grants.client_auth import Params, Presented, presented


def client_credentials(request: Request, form: Params) -> Presented:
    """The one set of credentials in the Authorization header or the form (not verified)."""
    # The raw headers, as ``Headers.getlist`` would read them, without building it.
    values = [v for k, v in request.scope.get("headers", ()) if k == b"authorization"]
    if len(values) > 1:
        raise InvalidRequest("Send at most one Authorization header.")
    return presented(values[0].decode("latin-1") if values else None, form)
