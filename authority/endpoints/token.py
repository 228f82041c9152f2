"""The token endpoint (RFC 6749 §3.2): token exchange (RFC 8693 §2.1) for agents, and the
CIBA grant (OpenID CIBA §10.1) with which they collect a call their owner approved.

Parses and types the form, hands it to ``grants.token_exchange`` or ``grants.ciba``,
renders RFC 8693 §2.2. Every answer carries ``Cache-Control: no-store`` (RFC 6749 §5.1).

A call that needs the owner's approval is answered with HTTP 200 and the CIBA §7.3
acknowledgement ``{"auth_req_id", "expires_in", "interval"}``, not with an error: the
request was accepted and is being acted on, and a 4xx would tell every OAuth client that
it was refused. A client that knows only RFC 8693 sees a 200 without ``access_token``
and fails closed (no token to use); one that knows this authority, or CIBA, polls.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.context import Services
from authority.errors import (
    InvalidAuthorizationDetails,
    InvalidClient,
    InvalidClientChallenge,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnsupportedGrantType,
)
from authority.grants.ciba import PollRequest, poll
from authority.grants.token_exchange import Denied, ExchangeRequest, Issued, exchange
from authority.metadata import GRANT_CIBA, GRANT_TOKEN_EXCHANGE
from authority.policy.checks import ToolCall
from authority.tokens.access_token import ACCESS_TOKEN_TYPE, TOOL_CALL_TYPE

from . import paths
from .guard import endpoint
from .http import NO_STORE, Form, json_response, read_form

#: The grant types this endpoint accepts, as the metadata advertises them.
TOKEN_EXCHANGE = GRANT_TOKEN_EXCHANGE
CIBA = GRANT_CIBA
MAX_AUTH_REQ_ID = 200
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# RFC 8707 §2 lets resource repeat; it is parsed as a list and then held to exactly one.
REPEATABLE = frozenset({"resource", "audience"})
MAX_TEXT = 2048
_TOOL_CALL_FIELDS = {"type", "tool", "resource", "action", "locations"}


def _text(value: Any, limit: int = MAX_TEXT) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def parse_tool_call(raw: str, resource: str) -> ToolCall:
    """RFC 9396 §2: a JSON array; here exactly one ``tool_call`` object."""
    invalid = InvalidAuthorizationDetails
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid("The authorization_details parameter is not valid JSON.") from None
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise invalid("The authorization_details must be an array of exactly one object.")
    detail = value[0]
    if detail.get("type") != TOOL_CALL_TYPE:
        raise invalid("The authorization_details type is not supported; use tool_call.")
    # RFC 9396 §5: "contains fields of the wrong type", "unknown fields", "missing required".
    if not set(detail) <= _TOOL_CALL_FIELDS:
        raise invalid("The tool_call authorization detail has an unknown field.")
    for name in ("tool", "resource", "action"):
        if not _text(detail.get(name)):
            raise invalid(f"The tool_call authorization detail needs a valid {name}.")
    locations = detail.get("locations")
    if locations is not None and locations != [resource]:
        raise invalid("The tool_call locations must be exactly the requested resource.")
    return ToolCall(tool=detail["tool"], resource=detail["resource"], action=detail["action"])


def _one_resource(form: Form) -> str:
    resources = form.get_all("resource")
    if len(resources) != 1:
        # RFC 8707 §2: the server may refuse what it cannot issue one token for.
        raise InvalidTarget("Exactly one resource parameter is required.")
    resource = resources[0]
    if not _text(resource) or not resource.startswith(("https://", "http://")) or "#" in resource:
        # RFC 8707 §2: "an absolute URI ... MUST NOT include a fragment component".
        raise InvalidTarget("The resource parameter must be an absolute URI without fragment.")
    audiences = form.get_all("audience")
    if audiences and audiences != [resource]:
        raise InvalidTarget("The audience parameter must equal the resource parameter.")
    return resource


def _assertion(form: Form) -> tuple[str, bool]:
    """The agent's attestation: as actor_token or as client_assertion, never both."""
    # Only the methods the metadata advertises (metadata.AGENT_AUTH_METHODS) are taken:
    # RFC 6749 §5.2 "invalid_client ... unsupported authentication method" for a posted
    # client secret, as for a Basic header (checked by the callers).
    if form.get("client_secret") is not None:
        raise InvalidClient("Agents authenticate with an attestation JWT, not a client secret.")
    actor = form.get("actor_token")
    assertion = form.get("client_assertion")
    if actor is not None and assertion is not None:
        raise InvalidRequest("Send the attestation as actor_token or client_assertion, not both.")
    if assertion is not None:
        if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
            raise InvalidClient("The client_assertion_type must be jwt-bearer (RFC 7523).")
        return assertion, True
    if actor is None:
        raise InvalidClient("The agent must authenticate with an attestation JWT.")
    if form.get("actor_token_type") != JWT_TOKEN_TYPE:
        raise InvalidRequest("The actor_token_type must be urn:ietf:params:oauth:token-type:jwt.")
    return actor, False


def _lifetime(form: Form) -> int | None:
    raw = form.get("expires_in")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or int(raw) < 1:
        raise InvalidRequest("The expires_in parameter must be a positive number of seconds.")
    return int(raw)


def _dpop_header(request: Request) -> str | None:
    values = request.headers.getlist("dpop")
    if len(values) > 1:
        # RFC 9449 §4.3 item 1: "not more than one DPoP HTTP request header field".
        raise InvalidDPoPProof("Send at most one DPoP header.")
    return values[0] if values else None


def parse_exchange(services: Services, request: Request, form: Form) -> ExchangeRequest:
    subject = form.require("subject_token")
    if form.get("subject_token_type") != JWT_TOKEN_TYPE:
        raise InvalidRequest("The subject_token_type must be urn:ietf:params:oauth:token-type:jwt.")
    requested = form.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise InvalidRequest("Only access tokens can be requested.")
    if form.get("scope") is not None:
        raise InvalidScope("Use authorization_details to name the call; scope is not supported.")
    if request.headers.get("authorization") is not None:
        # RFC 6749 §5.2: a client that tried the Authorization header gets 401 + challenge.
        raise InvalidClientChallenge(
            "Agents authenticate with an attestation JWT, not an Authorization header.",
        )
    resource = _one_resource(form)
    call = parse_tool_call(form.require("authorization_details"), resource)
    assertion, via_client_assertion = _assertion(form)
    client_id = form.get("client_id")
    return ExchangeRequest(
        subject_token=subject,
        assertion=assertion,
        via_client_assertion=via_client_assertion,
        client_id=client_id,
        resource=resource,
        call=call,
        lifetime=_lifetime(form),
        dpop_proof=_dpop_header(request),
        method=request.method,
        url=services.settings.issuer + paths.TOKEN,
    )


def parse_poll(services: Services, request: Request, form: Form) -> PollRequest:
    auth_req_id = form.require("auth_req_id")
    if len(auth_req_id) > MAX_AUTH_REQ_ID or not auth_req_id.isprintable():
        raise InvalidRequest("The auth_req_id parameter is malformed.")
    if request.headers.get("authorization") is not None:
        # RFC 6749 §5.2: a client that tried the Authorization header gets 401 + challenge.
        raise InvalidClientChallenge(
            "Agents authenticate with an attestation JWT, not an Authorization header.",
        )
    assertion, via_client_assertion = _assertion(form)
    return PollRequest(
        auth_req_id=auth_req_id,
        assertion=assertion,
        via_client_assertion=via_client_assertion,
        client_id=form.get("client_id"),
        dpop_proof=_dpop_header(request),
        method=request.method,
        url=services.settings.issuer + paths.TOKEN,
    )


def _token_body(issued: Issued) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
        "authorization_details": issued.authorization_details,
    }


@endpoint
async def token(request: Request) -> Response:
    services: Services = request.app.state.services
    form = await read_form(request, services.settings.max_body_bytes, repeatable=REPEATABLE)
    grant_type = form.require("grant_type")
    if grant_type == CIBA:
        issued = await poll(services, parse_poll(services, request, form))
        return json_response(_token_body(issued), 200, NO_STORE)
    if grant_type != TOKEN_EXCHANGE:
        raise UnsupportedGrantType()
    parsed = parse_exchange(services, request, form)
    try:
        result = await exchange(services, parsed)
    except Denied as denied:
        raise denied.error from None
    if isinstance(result, Issued):
        return json_response(_token_body(result), 200, NO_STORE)
    # CIBA §7.3: the acknowledgement of an accepted request awaiting the owner.
    pending = {
        "auth_req_id": result.auth_req_id,
        "expires_in": result.expires_in,
        "interval": result.interval,
    }
    return json_response(pending, 200, NO_STORE)


routes = [Route(paths.TOKEN, token, methods=["POST"])]
