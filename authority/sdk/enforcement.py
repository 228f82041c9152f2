"""The per-call check every enforcement point makes, shared by the resource-server middleware
(``authority.sdk.middleware``) and the gateway (``authority.gateway``).

One ``TokenGate`` guards one audience: it reads the credentials of a request (RFC 6750 §2.1,
RFC 9449 §7.1), verifies the token locally (``authority.sdk.verifier``: signature against
the JWKS, issuer, audience, lifetime, DPoP binding), checks that it names exactly the call
about to be made, and then that it is still live: against the revocation feed when the
feed is healthy, by introspection (RFC 7662) otherwise and for single-use tools (one
request for the concurrent checks of a token, ``authority.sdk.introspector``). Every
"no" is a ``Refusal`` that renders as an RFC 6750 §3 / RFC 9449 §7.1 challenge naming the
resource's RFC 9728 metadata.

Fail closed. Where the authority cannot be asked (its keys cannot be read, introspection
does not answer) the call is refused: as 401 ``invalid_token`` by default (what the
middleware has always answered), or as 503 ``temporarily_unavailable`` with
``unavailable_status=503`` (the gateway: the agent should retry, not ask for a new token).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from authority import protocol
from authority.protocol import DPOP_ALGORITHMS
from authority.sdk.connections import AuthorityConnections
from authority.sdk.feed import basic_auth
from authority.sdk.introspector import Answer, Introspector, Liveness
from authority.sdk.resource_metadata import ResourceMetadata
from authority.sdk.revocations import FeedFollower
from authority.sdk.verifier import JWKSCache, KeysUnavailable, TokenInvalid, TokenVerifier
from authority.sdk.verifier import VerifiedToken as VerifiedToken

__all__ = [
    "REALM",
    "Liveness",
    "Refusal",
    "TokenGate",
    "VerifiedToken",
    "challenge",
    "credentials",
    "refusal_body",
    "request_url",
]

log = logging.getLogger("authority.sdk.enforcement")

REALM: Final = "authority"


class Refusal(Exception):
    """A refused request: the HTTP status, the RFC 6750 error code (None for a bare
    challenge) and a fixed description (never an echo of the request)."""

    def __init__(self, status: int, error: str | None, description: str, dpop: bool) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.dpop = status, error, description, dpop


@dataclass(frozen=True, slots=True)
class Presented:
    """What the request carries: the scheme (``bearer`` or ``dpop``), the token, the proof."""

    scheme: str
    token: str | None
    dpop_proof: str | None

    @property
    def dpop(self) -> bool:
        return self.scheme == "dpop"


def credentials(header: str | None) -> tuple[str, str | None]:
    """The scheme and token of an ``Authorization`` header (RFC 6750 §2.1, RFC 9449 §7.1)."""
    if header is None:
        return "bearer", None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop") or not value.strip():
        return "bearer", None
    return scheme, value.strip()


def request_url(scope: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """The URL a request was sent to, as a DPoP proof's ``htu`` names it."""
    scheme = str(scope.get("scheme", "http"))
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}{scope.get('root_path', '')}{scope['path']}"


class TokenGate:
    """The checks of one audience: verify, match the call, check liveness."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        http: httpx.AsyncClient,
        client_id: str | None = None,
        client_secret: str | None = None,
        use_feed: bool = True,
        leeway: int = 5,
        clock: Callable[[], float] | None = None,
        feed_max_silence: float = 30.0,
        unavailable_status: int = 401,
        persistent: bool = False,
    ) -> None:
        """``persistent``: introspect over connections of the gate's own to the issuer
        (``authority.sdk.connections``) rather than through ``http``; for an ``http`` the
        gate's owner made itself, with no proxy between it and the issuer."""
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.http = http
        self.auth = (
            basic_auth(client_id, client_secret)
            if client_id is not None and client_secret is not None
            else None
        )
        now = clock or time.time
        self.verifier = TokenVerifier(
            self.issuer, audience, JWKSCache(self.issuer, http), leeway=leeway, clock=now
        )
        self.feed: FeedFollower | None = (
            FeedFollower(
                self.issuer + protocol.REVOCATION_FEED_PATH,
                http,
                auth=self.auth,
                clock=now,
                max_silence=feed_max_silence,
            )
            if use_feed and self.auth is not None
            else None
        )
        self.unavailable_status = unavailable_status
        self.introspector = Introspector(
            self.issuer,
            http,
            self.auth,
            authorization=_authorization(http, self.auth),
            connections=_connections(self.issuer, http) if persistent else None,
        )
        self.resource_metadata = ResourceMetadata.for_resource(audience, self.issuer)

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        if self.feed is not None:
            self.feed.start()

    async def stop(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        await self.introspector.aclose()

    # --- the checks -----------------------------------------------------------------
    @staticmethod
    def presented(headers: Mapping[str, str]) -> Presented:
        return TokenGate.present(headers.get("authorization"), headers.get("dpop"))

    @staticmethod
    def present(authorization: str | None, dpop_proof: str | None) -> Presented:
        """What a request carries, from its ``Authorization`` and ``DPoP`` values."""
        scheme, token = credentials(authorization)
        return Presented(scheme, token, dpop_proof)

    async def verify(self, presented: Presented, *, method: str, url: str) -> VerifiedToken:
        """The token, verified locally for a request ``method url``; else a ``Refusal``."""
        if presented.token is None:
            raise Refusal(401, None, "A per-call access token is required.", presented.dpop)
        try:
            return await self.verifier.verify(
                presented.token,
                scheme=presented.scheme,
                method=method,
                url=url,
                dpop_proof=presented.dpop_proof,
            )
        except KeysUnavailable:
            log.warning("token keys unavailable: the call is refused")
            raise self._unavailable(presented.dpop, "The access token is invalid.") from None
        except TokenInvalid as exc:
            log.info("token refused: %s", exc.reason)
            invalid = Refusal(401, "invalid_token", "The access token is invalid.", presented.dpop)
            raise invalid from None

    @staticmethod
    def check_call(
        verified: VerifiedToken, tool: str, resource: str, action: str, *, dpop: bool
    ) -> None:
        """The token names exactly this (tool, resource, action), or 403."""
        if (verified.tool, verified.action, verified.resource) != (tool, action, resource):
            raise Refusal(403, "insufficient_scope", "The token is for another tool call.", dpop)

    async def check_live(
        self, verified: VerifiedToken, *, introspect: bool, dpop: bool
    ) -> Mapping[str, Any] | None:
        """The token is not revoked: by the feed when it is healthy and ``introspect`` is
        False, else by introspection (whose active answer is returned)."""
        if introspect or self.feed is None or not self.feed.healthy:
            answer = await self.introspect(verified.raw)
            if answer == "unavailable":
                raise self._unavailable(dpop, "The access token is not active.")
            if answer == "inactive":
                raise Refusal(401, "invalid_token", "The access token is not active.", dpop)
            return answer
        if self.feed.revoked.revokes(verified):
            raise Refusal(401, "invalid_token", "The access token has been revoked.", dpop)
        return None

    async def introspect(self, token: str) -> Answer:
        """The RFC 7662 answer when active; ``inactive`` or ``unavailable`` otherwise."""
        return await self.introspector.introspect(token)

    def _unavailable(self, dpop: bool, description: str) -> Refusal:
        if self.unavailable_status == 503:
            return Refusal(503, "temporarily_unavailable", "The authority cannot be reached.", dpop)
        return Refusal(401, "invalid_token", description, dpop)


def _authorization(http: httpx.AsyncClient, auth: httpx.Auth | None) -> str | None:
    """The ``Authorization`` value ``auth`` puts on a request (client_secret_basic)."""
    if auth is None:
        return None
    request = next(auth.auth_flow(http.build_request("POST", "http://authority.invalid/")))
    value = request.headers.get("authorization")
    return None if value is None else str(value)


def _connections(issuer: str, http: httpx.AsyncClient) -> AuthorityConnections | None:
    """Persistent connections to the issuer, unless a proxy stands between (the general
    client honours the environment's proxies; these do not)."""
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(
        urllib.parse.urlsplit(issuer).hostname or ""
    ):
        return None
    timeout = http.timeout
    seconds = max(
        (t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t), default=5.0
    )
    # The general client's trust: certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR.
    tls = httpx.create_ssl_context() if issuer.startswith("https:") else None
    try:
        return AuthorityConnections(issuer, timeout=seconds, ssl_context=tls)
    except ValueError:
        return None


def challenge(refusal: Refusal, metadata: ResourceMetadata | None) -> str:
    """The ``WWW-Authenticate`` value of a refusal (RFC 6750 §3, RFC 9449 §7.1, RFC 9728 §5.1)."""
    value = f'{"DPoP" if refusal.dpop else "Bearer"} realm="{REALM}"'
    if refusal.error is not None:
        value += f', error="{refusal.error}", error_description="{refusal.description}"'
    if refusal.dpop:
        # RFC 9449 §7.1: algs names what a proof may be signed with, the same list the
        # authority's metadata advertises as dpop_signing_alg_values_supported.
        value += f', algs="{" ".join(DPOP_ALGORITHMS)}"'
    if metadata is not None:
        # MCP authorization: "MCP servers MUST use the HTTP header WWW-Authenticate when
        # returning a 401 Unauthorized to indicate the location of the resource server
        # metadata URL as described in RFC9728 Section 5.1"; on a 403 it helps as much.
        value += ", " + metadata.challenge_parameter()
    return value


def refusal_body(refusal: Refusal) -> bytes:
    """The RFC 6749-style JSON body of a refusal."""
    return json.dumps(
        {"error": refusal.error or "invalid_request", "error_description": refusal.description}
    ).encode()
