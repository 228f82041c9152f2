"""The token endpoint (RFC 6749 §3.2): token exchange (RFC 8693 §2.1) for agents, and the
CIBA grant (OpenID CIBA §10.1) with which they collect a call their owner approved.

Each grant type is registered here (``register_grant``) as a pair, in the manner of
authlib's ``BaseGrant``: ``validate_token_request`` parses and types the form (HTTP only,
no decision) and ``create_token_response`` hands it to its grant (``grants.token_exchange``
or ``grants.ciba``) and renders RFC 8693 §2.2. The endpoint looks the grant up by
``grant_type`` (``get_token_grant``); it knows no grant's rules. Every answer carries
``Cache-Control: no-store`` (RFC 6749 §5.1).

A call that needs the owner's approval is answered with HTTP 200 and the CIBA §7.3
acknowledgement ``{"auth_req_id", "expires_in", "interval"}``, not with an error: the
request was accepted and is being acted on, and a 4xx would tell every OAuth client that
it was refused. A client that knows only RFC 8693 sees a 200 without ``access_token``
and fails closed (no token to use); one that knows this authority, or CIBA, polls.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

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
from authority.grants.agent_auth import Presented
from authority.grants.ciba import PollRequest, poll
from authority.grants.issuance import Issued
from authority.grants.recording import Denied
from authority.grants.token_exchange import ExchangeRequest, exchange
from authority.metadata import GRANT_CIBA, GRANT_TOKEN_EXCHANGE
from authority.policy.arguments import ARGUMENTS, ARGUMENTS_DIGEST, ArgumentsRejected, bind
from authority.policy.checks import ToolCall
from authority.tokens.access_token import ACCESS_TOKEN_TYPE, TOOL_CALL_TYPE

from . import forms, paths
from .guard import DirectRoute, endpoint
from .http import Form, NoStoreJSON, read_form

#: The grant types this endpoint accepts, as the metadata advertises them.
TOKEN_EXCHANGE = GRANT_TOKEN_EXCHANGE
CIBA = GRANT_CIBA
MAX_AUTH_REQ_ID = 200
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_TEXT = 2048
_TOOL_CALL_FIELDS = {"type", "tool", "resource", "action", "locations", ARGUMENTS, ARGUMENTS_DIGEST}


def _text(value: Any, limit: int = MAX_TEXT) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def parse_tool_call(raw: str, resource: str, *, max_arguments_bytes: int) -> ToolCall:
    """RFC 9396 §2: a JSON array; here exactly one ``tool_call`` object.

    Its optional ``arguments`` / ``arguments_digest`` bind the call's arguments
    (``policy.arguments``), at most ``max_arguments_bytes`` in their canonical form.
    """
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
    try:
        bound = bind(detail, max_bytes=max_arguments_bytes)
    except ArgumentsRejected as exc:
        raise invalid(str(exc)) from None
    return ToolCall(
        tool=detail["tool"],
        resource=detail["resource"],
        action=detail["action"],
        arguments_digest=bound.digest if bound is not None else None,
        arguments=bound.arguments if bound is not None else None,
    )


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
    """The agent's attestation: as actor_token or as client_assertion.

    Both only for an agent that requires its key and its workload identity: then the
    attestation is the client_assertion and the actor_token its platform token
    (``_workload_token``; ``grants.workload_auth``). An agent registered with identity
    rules only sends its platform token as actor_token, with client_id.
    """
    # Only the methods the metadata advertises (metadata.AGENT_AUTH_METHODS) are taken:
    # RFC 6749 §5.2 "invalid_client ... unsupported authentication method" for a posted
    # client secret, as for a Basic header (checked by the callers).
    if form.get("client_secret") is not None:
        raise InvalidClient("Agents authenticate with an attestation JWT, not a client secret.")
    actor = form.get("actor_token")
    assertion = form.get("client_assertion")
    if actor is not None and assertion is not None:
        _workload_token(form)  # the actor_token's type is checked as when alone
    if assertion is not None:
        if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
            raise InvalidClient("The client_assertion_type must be jwt-bearer (RFC 7523).")
        return assertion, True
    if actor is None:
        raise InvalidClient("The agent must authenticate with an attestation JWT.")
    if form.get("actor_token_type") != JWT_TOKEN_TYPE:
        raise InvalidRequest("The actor_token_type must be urn:ietf:params:oauth:token-type:jwt.")
    return actor, False


def _workload_token(form: Form) -> str | None:
    """The platform token sent as actor_token next to a client_assertion, if any."""
    actor = form.get("actor_token")
    if actor is None or form.get("client_assertion") is None:
        return None
    if form.get("actor_token_type") != JWT_TOKEN_TYPE:
        raise InvalidRequest("The actor_token_type must be urn:ietf:params:oauth:token-type:jwt.")
    return actor


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


def _no_authorization_header(request: Request) -> None:
    if request.headers.get("authorization") is not None:
        # RFC 6749 §5.2: a client that tried the Authorization header gets 401 + challenge.
        raise InvalidClientChallenge(
            "Agents authenticate with an attestation JWT, not an Authorization header.",
        )


def _presented(
    services: Services,
    request: Request,
    attestation: tuple[str, bool],
    client_id: str | None,
    subject_token: str | None = None,
    workload_token: str | None = None,
) -> Presented:
    assertion, via_client_assertion = attestation
    return Presented(
        assertion=assertion,
        via_client_assertion=via_client_assertion,
        client_id=client_id,
        dpop_proof=_dpop_header(request),
        method=request.method,
        url=services.settings.issuer + paths.TOKEN,
        subject_token=subject_token,
        workload_token=workload_token,
    )


def parse_exchange(services: Services, request: Request, form: Form) -> ExchangeRequest:
    subject = form.require("subject_token")
    if form.get("subject_token_type") != JWT_TOKEN_TYPE:
        raise InvalidRequest("The subject_token_type must be urn:ietf:params:oauth:token-type:jwt.")
    requested = form.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise InvalidRequest("Only access tokens can be requested.")
    if form.get("scope") is not None:
        raise InvalidScope("Use authorization_details to name the call; scope is not supported.")
    _no_authorization_header(request)
    resource = _one_resource(form)
    call = parse_tool_call(
        form.require("authorization_details"),
        resource,
        max_arguments_bytes=services.settings.authorization_details_max_arguments_bytes,
    )
    attestation = _assertion(form)
    client_id = form.get("client_id")
    lifetime = _lifetime(form)
    presented = _presented(
        services,
        request,
        attestation,
        client_id,
        subject_token=subject,
        workload_token=_workload_token(form),
    )
    return ExchangeRequest(presented=presented, resource=resource, call=call, lifetime=lifetime)


def parse_poll(services: Services, request: Request, form: Form) -> PollRequest:
    auth_req_id = form.require("auth_req_id")
    if len(auth_req_id) > MAX_AUTH_REQ_ID or not auth_req_id.isprintable():
        raise InvalidRequest("The auth_req_id parameter is malformed.")
    _no_authorization_header(request)
    attestation = _assertion(form)
    presented = _presented(
        services, request, attestation, form.get("client_id"), workload_token=_workload_token(form)
    )
    return PollRequest(auth_req_id=auth_req_id, presented=presented)


def _token_body(issued: Issued) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
        "authorization_details": issued.authorization_details,
    }


# --- the grants, registered by grant_type --------------------------------------------------
Valid = TypeVar("Valid")


class TokenGrant(Protocol[Valid]):
    """One grant type: validate the request (parse, no decision), then create the answer."""

    def validate_token_request(self, services: Services, request: Request, form: Form) -> Valid:
        """The typed request, or raise the RFC error for a malformed one."""
        ...

    async def create_token_response(self, services: Services, valid: Valid) -> dict[str, Any]:
        """The grant's decision on the request, as the JSON body of a 200 (or raise)."""
        ...


class TokenExchangeGrant:
    """RFC 8693 §2.1; a call awaiting approval is acknowledged as CIBA §7.3 does."""

    def validate_token_request(
        self, services: Services, request: Request, form: Form
    ) -> ExchangeRequest:
        return parse_exchange(services, request, form)

    async def create_token_response(
        self, services: Services, valid: ExchangeRequest
    ) -> dict[str, Any]:
        with services.tracing.span("authority.token_exchange"):
            result = await exchange(services, valid)
        if isinstance(result, Denied):
            raise result.error
        if isinstance(result, Issued):
            return _token_body(result)
        # CIBA §7.3: the acknowledgement of an accepted request awaiting the owner.
        return {
            "auth_req_id": result.auth_req_id,
            "expires_in": result.expires_in,
            "interval": result.interval,
        }


class CibaGrant:
    """OpenID CIBA §10.1, poll mode: the token for an approved call, or why not yet."""

    def validate_token_request(
        self, services: Services, request: Request, form: Form
    ) -> PollRequest:
        return parse_poll(services, request, form)

    async def create_token_response(self, services: Services, valid: PollRequest) -> dict[str, Any]:
        with services.tracing.span("authority.ciba_poll"):
            issued = await poll(services, valid)
        return _token_body(issued)


_GRANTS: dict[str, TokenGrant[Any]] = {}


def register_grant(grant_type: str, grant: TokenGrant[Any]) -> None:
    """Accept ``grant_type`` at this endpoint (the metadata advertises the same names)."""
    _GRANTS[grant_type] = grant


def get_token_grant(grant_type: str) -> TokenGrant[Any]:
    grant = _GRANTS.get(grant_type)
    if grant is None:
        # RFC 6749 §5.2: "unsupported_grant_type".
        raise UnsupportedGrantType()
    return grant


register_grant(TOKEN_EXCHANGE, TokenExchangeGrant())
register_grant(CIBA, CibaGrant())


@endpoint
async def token(request: Request) -> Response:
    services: Services = request.app.state.services
    # RFC 8707 §2 lets resource repeat: it is parsed as a list, then held to exactly one.
    form = await read_form(request, services.settings.max_body_bytes, schema=forms.TOKEN_FORMS)
    grant = get_token_grant(form.require("grant_type"))
    valid = grant.validate_token_request(services, request, form)
    # The bytes and headers of ``json_response(body, 200, NO_STORE)``, built directly.
    return NoStoreJSON(orjson.dumps(await grant.create_token_response(services, valid)))


routes = [DirectRoute(paths.TOKEN, token, methods=["POST"])]
