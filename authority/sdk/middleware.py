"""ASGI middleware for resource servers: every request to a declared route must carry a
per-call token from the authority for exactly that route's tool, resource and action.

    app = AuthorityMiddleware(
        app,
        issuer="https://authority.example",
        audience="https://api.github.example",
        routes=[ToolRoute("POST", "/repos/{org}/{repo}/issues",
                          tool="github.issues.create", action="create",
                          resource="{org}/{repo}")],
        client_id=..., client_secret=...,   # for the feed and introspection
    )

Tokens are verified locally (signature against the JWKS, issuer, audience, expiry, DPoP
binding) and checked against the revocation feed. Routes marked ``introspect=True``
(single-use tools) and every route while the feed is not healthy (not yet caught up on
its current connection, which includes the replay of everything revoked before this
server started, or silent too long) are checked by introspection (RFC 7662) instead;
without client credentials that means refusal.
A request to a path no route declares is refused (403) unless listed in ``public``.
Refusals are RFC 6750 §3 / RFC 9449 §7.1 challenges in ``WWW-Authenticate``, each naming
the resource's RFC 9728 metadata (``resource_metadata``), which is served without a token
(``authority.sdk.resource_metadata``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authority import protocol
from authority.protocol import DPOP_ALGORITHMS
from authority.sdk.feed import basic_auth
from authority.sdk.resource_metadata import ResourceMetadata
from authority.sdk.revocations import FeedFollower
from authority.sdk.verifier import JWKSCache, TokenInvalid, TokenVerifier, VerifiedToken

__all__ = ["AuthorityMiddleware", "ToolRoute", "token_of"]

log = logging.getLogger("authority.sdk.middleware")

REALM = "authority"
STATE_KEY = "authority_token"


@dataclass
class ToolRoute:
    method: str
    path: str
    tool: str
    action: str
    resource: str  # a template over the path parameters, e.g. "{org}/{repo}"
    introspect: bool = False
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self._regex = compile_path(self.path)[0]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = self._regex.match(path)
        return None if found is None else found.groupdict()


class Refusal(Exception):
    def __init__(self, status: int, error: str | None, description: str, dpop: bool) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.dpop = status, error, description, dpop


class AuthorityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        issuer: str,
        audience: str,
        routes: Sequence[ToolRoute],
        public: Sequence[str] = (),
        client_id: str | None = None,
        client_secret: str | None = None,
        http: httpx.AsyncClient | None = None,
        use_feed: bool = True,
        leeway: int = 5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.app = app
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.routes = list(routes)
        self.public = frozenset(public)
        self.http = http or httpx.AsyncClient(timeout=5.0)
        self._owns_http = http is None
        self._auth = (
            basic_auth(client_id, client_secret)
            if client_id is not None and client_secret is not None
            else None
        )
        now = clock or time.time
        self.verifier = TokenVerifier(
            self.issuer, audience, JWKSCache(self.issuer, self.http), leeway=leeway, clock=now
        )
        self.feed = (
            FeedFollower(
                self.issuer + protocol.REVOCATION_FEED_PATH, self.http, auth=self._auth, clock=now
            )
            if use_feed and self._auth is not None
            else None
        )
        self._introspection_endpoint: str | None = None
        self.resource_metadata = ResourceMetadata.for_resource(audience, self.issuer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] not in ("http", "websocket"):
            raise RuntimeError(f"unsupported ASGI scope type {scope['type']!r}")
        if self.resource_metadata is not None and self.resource_metadata.serves(scope):
            # RFC 9728 §3: metadata needs no token and is no declared tool route.
            await self.resource_metadata.send(scope, send)
            return
        if scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        try:
            token = await self._authorise(scope)
        except Refusal as refusal:
            if scope["type"] == "websocket":
                # Refused before the handshake completes (ASGI: close = HTTP 403).
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _refuse(send, refusal, self.resource_metadata)
            return
        scope.setdefault("state", {})[STATE_KEY] = token
        await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup" and self.feed is not None:
                self.feed.start()
            elif message["type"] == "lifespan.shutdown":
                if self.feed is not None:
                    await self.feed.stop()
                if self._owns_http:
                    await self.http.aclose()
            return message

        await self.app(scope, wrapped_receive, send)

    async def _authorise(self, scope: Scope) -> VerifiedToken:
        # A WebSocket is opened with a GET (RFC 6455 §4.1); declare its route with GET.
        method, path = scope.get("method", "GET"), scope["path"]
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                break
        else:
            raise Refusal(403, "insufficient_scope", "No tool is declared for this route.", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, token = _credentials(headers.get("authorization"))
        dpop = scheme == "dpop"
        if token is None:
            raise Refusal(401, None, "A per-call access token is required.", dpop)
        url = _request_url(scope, headers)
        try:
            verified = await self.verifier.verify(
                token, scheme=scheme, method=method, url=url, dpop_proof=headers.get("dpop")
            )
        except TokenInvalid as exc:
            log.info("token refused: %s", exc.reason)
            raise Refusal(401, "invalid_token", "The access token is invalid.", dpop) from None
        resource = route.resource.format(**params)
        if (verified.tool, verified.action, verified.resource) != (
            route.tool,
            route.action,
            resource,
        ):
            raise Refusal(403, "insufficient_scope", "The token is for another tool call.", dpop)
        if route.introspect or self.feed is None or not self.feed.healthy:
            if not await self._introspect(token):
                raise Refusal(401, "invalid_token", "The access token is not active.", dpop)
        elif self.feed.revoked.revokes(verified):
            raise Refusal(401, "invalid_token", "The access token has been revoked.", dpop)
        return verified

    async def _introspect(self, token: str) -> bool:
        if self._auth is None:
            return False  # no way to ask: fail closed
        try:
            if self._introspection_endpoint is None:
                metadata = (
                    await self.http.get(self.issuer + protocol.OAUTH_AUTHORIZATION_SERVER_PATH)
                ).json()
                self._introspection_endpoint = str(metadata["introspection_endpoint"])
            response = await self.http.post(
                self._introspection_endpoint, data={"token": token}, auth=self._auth
            )
            answer = response.json()
            return (
                response.status_code == 200
                and isinstance(answer, dict)
                and answer.get("active") is True
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False  # the authority cannot be asked: fail closed


def _credentials(header: str | None) -> tuple[str, str | None]:
    if header is None:
        return "bearer", None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop") or not value.strip():
        return "bearer", None
    return scheme, value.strip()


def _request_url(scope: Scope, headers: dict[str, str]) -> str:
    scheme = str(scope.get("scheme", "http"))
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}{scope.get('root_path', '')}{scope['path']}"


async def _refuse(send: Send, refusal: Refusal, metadata: ResourceMetadata | None) -> None:
    challenge = f'{"DPoP" if refusal.dpop else "Bearer"} realm="{REALM}"'
    if refusal.error is not None:
        challenge += f', error="{refusal.error}", error_description="{refusal.description}"'
    if refusal.dpop:
        # RFC 9449 §7.1: algs names what a proof may be signed with, the same list the
        # authority's metadata advertises as dpop_signing_alg_values_supported.
        challenge += f', algs="{" ".join(DPOP_ALGORITHMS)}"'
    if metadata is not None:
        # MCP authorization: "MCP servers MUST use the HTTP header WWW-Authenticate when
        # returning a 401 Unauthorized to indicate the location of the resource server
        # metadata URL as described in RFC9728 Section 5.1"; on a 403 it helps as much.
        challenge += ", " + metadata.challenge_parameter()
    body = json.dumps(
        {"error": refusal.error or "invalid_request", "error_description": refusal.description}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", challenge.encode()),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def token_of(state: Any) -> VerifiedToken:
    """The verified token of the current request, from ``request.state``."""
    token = getattr(state, STATE_KEY, None)
    if not isinstance(token, VerifiedToken):
        raise LookupError("the request did not pass AuthorityMiddleware")
    return token
