"""Client credentials as an HTTP request carries them, for ``grants.client_auth``."""

from __future__ import annotations

from starlette.requests import Request

from authority.errors import InvalidRequest
from authority.grants.client_auth import Params, Presented, presented


def client_credentials(request: Request, form: Params) -> Presented:
    """The one set of credentials in the Authorization header or the form (not verified)."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise InvalidRequest("Send at most one Authorization header.")
    return presented(values[0] if values else None, form)
