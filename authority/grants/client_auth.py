"""Client authentication at the introspection, revocation and feed endpoints: RFC 6749 §2.3
(``client_secret_basic``, ``client_secret_post``) and RFC 7523 §2.2 (``private_key_jwt``).

Resource servers authenticate with what they registered (a generated secret, or a JWKS);
agents, at the revocation endpoint only, with a client assertion signed by their own key,
exactly as at the token endpoint (iss = sub = the agent, short exp, single-use jti).

Split in two so that callers can load everything they need in one round trip:
``presented`` parses what the request carries (nothing verified), the caller loads the
registered client together with its own rows (through its own port, or
``registered_server``), then ``authenticate_server`` or ``authenticate_agent`` decides.
The assertion's jti is not spent there: the result carries its ``SingleUse``, which
``require_fresh`` (or ``check_client``) spends through the client port
(``storage.clients``) before it calls ``require_unused`` with the outcome.

Every failure is ``invalid_client``: 401 with a ``WWW-Authenticate: Basic`` challenge
when the client used the Authorization header (RFC 6749 §5.2: "MUST respond with an HTTP
401 ... and include the WWW-Authenticate response header field matching the
authentication scheme used by the client"), 400 when it authenticated in the body or not
at all (§5.2: "responds with an HTTP 400 (Bad Request) status code (unless specified
otherwise)"; RFC 7662 §2.3 refers to §5.2), so that clients show the RFC error rather than
a challenge they cannot answer. The description never says which part failed, except
that a key-less assertion needs a ``kid`` (``KID_REQUIRED_DESCRIPTION``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import unquote_plus

from authority import protocol
from authority.context import Services
from authority.errors import InvalidClient, InvalidClientChallenge, InvalidRequest, TooManyRequests
from authority.storage.clients import RegisteredServer
from authority.storage.hot import Count
from authority.storage.replay import SingleUse, single_use
from authority.tokens.inbound import (
    KID_REQUIRED,
    JWTRejected,
    UnverifiedJWT,
    peek,
    verify_attestation,
)

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]

JWT_BEARER = protocol.JWT_BEARER_ASSERTION
REALM = "authority"
MAX_CLIENT_ID = 40
MAX_SECRET = 256
#: Compared against when the client id is unknown, so both paths compute one HMAC.
_NO_HASH = "0" * 64
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})


class Params(Protocol):
    """The form parameters (``endpoints.http.Form`` fits); an empty value counts as absent."""

    def get(self, key: str) -> str | None: ...


KID_REQUIRED_DESCRIPTION = (
    "The client assertion has no kid and the client has too many keys for its alg: "
    "name the signing key with kid."
)


def invalid_client(description: str | None = None, *, via_header: bool) -> InvalidClient:
    """401 + challenge for credentials from the Authorization header, else 400 (§5.2)."""
    if via_header:
        return InvalidClientChallenge(
            description, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'}
        )
    return InvalidClient(description)


def _refused(credentials: Presented, description: str | None = None) -> InvalidClient:
    return invalid_client(description, via_header=credentials.method == "client_secret_basic")


def _assertion_refused(exc: JWTRejected) -> InvalidClient:
    described = KID_REQUIRED_DESCRIPTION if exc.reason == KID_REQUIRED else None
    return invalid_client(described, via_header=False)


@dataclass(frozen=True, slots=True)
class Presented:
    """Client credentials as the request carries them: parsed, NOT verified."""

    method: AuthMethod
    client_id: str
    secret: str | None = None
    unverified_assertion: UnverifiedJWT | None = None


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """A client whose credentials checked out, pending the replay check of ``replay``."""

    id: str
    kind: Literal["resource_server", "agent"]
    audience: str | None  # a resource server's audience; None for an agent
    replay: SingleUse | None  # the assertion's jti, for the caller to spend


# --- parsing ------------------------------------------------------------------------------
def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise invalid_client(
            "Use HTTP Basic, client_secret_post or a client assertion.", via_header=True
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid_client(via_header=True) from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise invalid_client(via_header=True)
    # RFC 6749 §2.3.1: both are application/x-www-form-urlencoded before base64 (App. B).
    try:
        client_id = unquote_plus(username, errors="strict")
        secret = unquote_plus(password, errors="strict")
    except UnicodeDecodeError:
        raise invalid_client(via_header=True) from None
    return client_id, secret


def _check_id(client_id: str, *, via_header: bool) -> str:
    if not client_id or len(client_id) > MAX_CLIENT_ID or not client_id.isprintable():
        raise invalid_client(via_header=via_header)
    return client_id


def presented(authorization: str | None, params: Params) -> Presented:
    """The one set of credentials in the request; ``invalid_client`` when there is none.

    RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
    request", so two of them are ``invalid_request``.
    """
    secret_in_form = params.get("client_secret")
    assertion = params.get("client_assertion")
    assertion_type = params.get("client_assertion_type")
    form_id = params.get("client_id")
    used = [authorization is not None, secret_in_form is not None, assertion is not None]
    if sum(used) > 1:
        raise InvalidRequest("Use exactly one client authentication method.")
    if authorization is not None:
        client_id, secret = _basic(authorization)
        if form_id is not None and form_id != client_id:
            raise invalid_client(via_header=True)
        if len(secret) > MAX_SECRET:
            raise invalid_client(via_header=True)
        return Presented(
            "client_secret_basic", _check_id(client_id, via_header=True), secret=secret
        )
    if secret_in_form is not None:
        if form_id is None or len(secret_in_form) > MAX_SECRET:
            raise invalid_client(via_header=False)
        return Presented(
            "client_secret_post", _check_id(form_id, via_header=False), secret=secret_in_form
        )
    if assertion is not None:
        # RFC 7523 §2.2: client_assertion_type MUST be jwt-bearer.
        if assertion_type != JWT_BEARER:
            raise invalid_client(
                "The client_assertion_type must be jwt-bearer (RFC 7523).", via_header=False
            )
        try:
            unverified = peek(assertion)
        except JWTRejected:
            raise invalid_client(via_header=False) from None
        issuer = unverified.claims.get("iss")
        if not isinstance(issuer, str):
            raise invalid_client(via_header=False)
        # RFC 7523 §3 item 1: iss is the client_id; a client_id parameter must agree.
        if form_id is not None and form_id != issuer:
            raise invalid_client(via_header=False)
        return Presented(
            "private_key_jwt", _check_id(issuer, via_header=False), unverified_assertion=unverified
        )
    raise invalid_client("The request needs client authentication.", via_header=False)


# --- loading ------------------------------------------------------------------------------
def server_from_row(row: Any) -> RegisteredServer | None:
    """Read ``SERVER_COLUMNS`` out of a row the caller's own query selected them into."""
    if row is None or row.rs_id is None:
        return None
    return RegisteredServer(
        id=row.rs_id,
        audience=row.rs_audience,
        auth_method=row.rs_auth_method,
        secret_hash=row.rs_secret_hash,
        jwks=row.rs_jwks,
        status=row.rs_status,
    )


async def registered_server(services: Services, client_id: str) -> RegisteredServer | None:
    """The registered server alone, for callers that need nothing else from storage."""
    return await services.client_store.server(client_id)


# --- deciding -------------------------------------------------------------------------------
def _assertion_replay(
    prefix: str, client_id: str, jti: str, exp: int, now: int, skew: int
) -> SingleUse:
    return single_use(prefix, client_id, jti, expires_at=max(exp, now) + skew)


def authenticate_server(
    services: Services,
    credentials: Presented,
    registered: RegisteredServer | None,
    *,
    endpoint_url: str,
    now: int,
) -> AuthenticatedClient:
    """Check a resource server's credentials against its registration."""
    settings = services.settings
    if credentials.method in SECRET_METHODS:
        stored = registered.secret_hash if registered is not None else None
        # Always one HMAC and one constant-time comparison, known client or not.
        matches = services.hasher.verify(credentials.secret or "", stored or _NO_HASH)
        if registered is None or registered.status != "active" or stored is None or not matches:
            raise _refused(credentials)
        # A secret authenticates only a client registered for a secret method; basic and
        # post are two ways of sending the same secret (RFC 6749 §2.3.1).
        if registered.auth_method not in SECRET_METHODS:
            raise _refused(credentials)
        return AuthenticatedClient(registered.id, "resource_server", registered.audience, None)
    if (
        registered is None
        or registered.status != "active"
        or registered.auth_method != "private_key_jwt"
        or registered.jwks is None
        or credentials.unverified_assertion is None
    ):
        raise _refused(credentials)
    try:
        verified = verify_attestation(
            credentials.unverified_assertion,
            agent_id=registered.id,
            jwks_json=registered.jwks,
            # RFC 7523 §3 item 3: an audience that identifies this authorization server:
            # the issuer identifier, or the URL of the endpoint being called.
            audiences=(settings.issuer, endpoint_url),
            now=now,
            skew=settings.clock_skew,
            max_lifetime=settings.assertion_max_lifetime,
            max_keys_without_kid=settings.assertion_max_keys_without_kid,
        )
    except JWTRejected as exc:
        raise _assertion_refused(exc) from None
    replay = _assertion_replay(
        "client_assertion", registered.id, verified.jti, verified.exp, now, settings.clock_skew
    )
    return AuthenticatedClient(registered.id, "resource_server", registered.audience, replay)


def authenticate_agent(
    services: Services,
    credentials: Presented,
    agent_id: str | None,
    agent_jwks: str | None,
    *,
    endpoint_url: str,
    now: int,
) -> AuthenticatedClient:
    """Check an agent's client assertion (RFC 7523 §3) against its registered keys.

    The replay key is the token endpoint's, so an attestation spent there cannot be spent
    here again, nor the other way round.
    """
    settings = services.settings
    if (
        credentials.method != "private_key_jwt"
        or credentials.unverified_assertion is None
        or agent_id is None
        or agent_jwks is None
    ):
        raise _refused(credentials)
    try:
        verified = verify_attestation(
            credentials.unverified_assertion,
            agent_id=agent_id,
            jwks_json=agent_jwks,
            audiences=(settings.issuer, endpoint_url),
            now=now,
            skew=settings.clock_skew,
            max_lifetime=settings.assertion_max_lifetime,
            max_keys_without_kid=settings.assertion_max_keys_without_kid,
        )
    except JWTRejected as exc:
        raise _assertion_refused(exc) from None
    replay = _assertion_replay(
        "attestation", agent_id, verified.jti, verified.exp, now, settings.clock_skew
    )
    return AuthenticatedClient(agent_id, "agent", None, replay)


def require_unused(client: AuthenticatedClient, claimed: bool) -> None:
    """RFC 7523 §3 item 7: a jti seen before is a replayed assertion."""
    if client.replay is not None and not claimed:
        # Only an assertion (sent in the body) has a replay entry.
        raise invalid_client(via_header=False)


# --- after authentication: one hot-state round trip -----------------------------------------
def rate_window(kind: str, client_id: str, now: int) -> Count:
    """The client's counter for the current minute (a fixed window, per client)."""
    return Count(f"rate:{kind}:{client_id}:{now // 60}", 60)


def enforce_rate(count: int, limit: int, now: int) -> None:
    if count > limit:
        # RFC 6585 §4 / RFC 9110 §10.2.3: when the window ends.
        raise TooManyRequests(retry_after=60 - now % 60)


async def require_fresh(services: Services, client: AuthenticatedClient) -> None:
    """Spend the assertion's jti (``storage.clients``); ``invalid_client`` if it was spent."""
    if client.replay is not None:
        require_unused(client, await services.client_store.spend(client.replay))


async def check_client(
    services: Services, client: AuthenticatedClient, kind: str, limit: int, now: int
) -> None:
    """Spend the assertion's jti (``require_fresh``), then count the rate window."""
    await require_fresh(services, client)
    outcome = await services.hot.apply([], [rate_window(kind, client.id, now)])
    enforce_rate(outcome.counts[0], limit, now)
