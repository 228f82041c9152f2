"""Call recordings over HTTP: a gateway submits, an auditor reads.

* ``POST /v1/gateway/calls``: a gateway (a registered resource server, authenticated as
  at introspection) submits the record of one call as JSON (``recordings.submission``).
  201 ``{"call_id", "created": true}`` when stored, 200 with ``created: false`` for a
  resubmission of a record stored before. The body may hold two heads of up to
  ``recording_max_body_bytes`` each in base64url, and ``max_body_bytes`` besides.
* ``GET /v1/recordings/{call_id}``: one recording with its ledger entry and its heads
  (``recordings.audit``); 404 for an unknown call, and for one past retention.
* ``GET /v1/recordings?jti=|grant=``: the recordings of one grant, paged.

The reads are the auditors' and admins', as the ledger is.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.context import Services
from authority.errors import InvalidRequest
from authority.recordings import audit, submission, submit

from . import paths
from .credentials import client_credentials
from .guard import endpoint
from .http import NO_STORE, json_response, read_json
from .ledger import AUDITORS
from .rest import caller, page_of

_MAX_JTI = 64
_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@endpoint
async def submit_call(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    if request.url.query:
        raise InvalidRequest("The request takes no query parameters.")
    limit = submission.max_request_bytes(settings.recording_max_body_bytes, settings.max_body_bytes)
    document = await read_json(request, limit)
    credentials = client_credentials(request, submission.ClientParams(document))
    done = await submit.submit(services, credentials, document)
    return json_response(
        {"call_id": done.call_id, "created": done.created}, 201 if done.created else 200, NO_STORE
    )


@endpoint
async def get_recording(request: Request) -> Response:
    services, _ = await caller(request, AUDITORS)
    found = await audit.recording(services, request.path_params["call_id"])
    return json_response(found, 200, NO_STORE)


def _key(request: Request, name: str, valid: bool, allowed: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if not valid:
        raise InvalidRequest(f"The {name} parameter must be {allowed}.")
    return value


@endpoint
async def list_recordings(request: Request) -> Response:
    services, _ = await caller(request, AUDITORS, ("jti", "grant", "limit", "cursor"))
    params = request.query_params
    jti = _key(
        request, "jti", 0 < len(params.get("jti", "")) <= _MAX_JTI, f"at most {_MAX_JTI} characters"
    )
    grant = _key(
        request,
        "grant",
        _ID.match(params.get("grant", "")) is not None,
        "an id: 1 to 40 letters, digits, _ or -",
    )
    if (jti is None) == (grant is None):
        raise InvalidRequest("Name the grant: exactly one of the jti and grant parameters.")
    listing = await audit.of_grant(
        services, grant_id=grant, jti=jti, page=page_of(request, services, audit.PAGE_KIND)
    )
    return json_response(
        {"items": listing.items, "next_cursor": listing.next_cursor}, 200, NO_STORE
    )


routes = [
    Route(paths.GATEWAY_CALLS, submit_call, methods=["POST"]),
    Route(paths.RECORDINGS, list_recordings, methods=["GET"]),
    Route(paths.RECORDINGS + "/{call_id}", get_recording, methods=["GET"]),
]
