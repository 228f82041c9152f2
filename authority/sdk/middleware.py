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
(``authority.sdk.resource_metadata``). The checks themselves are
``authority.sdk.enforcement.TokenGate``, which the gateway shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

try:
    from starlette.routing import compile_path
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ModuleNotFoundError as missing:  # the SDK alone: say which extra brings it
    raise ModuleNotFoundError(
        "authority.sdk.middleware needs Starlette: pip install 'authority[middleware]'",
        name=missing.name,
    ) from None

from authority.sdk.enforcement import Refusal, TokenGate, challenge, refusal_body
from authority.sdk.enforcement import credentials as _credentials
from authority.sdk.enforcement import request_url as _request_url
from authority.sdk.resource_metadata import ResourceMetadata
from authority.sdk.revocations import FeedFollower
from authority.sdk.verifier import TokenVerifier, VerifiedToken

# ``_credentials`` and ``_request_url`` keep their old names for the fuzz targets.
__all__ = [
    "AuthorityMiddleware",
    "Refusal",
    "ToolRoute",
    "_credentials",
    "_request_url",
    "token_of",
]

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
        self.app = app
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.routes = list(routes)
        self.public = frozenset(public)
        self.http = http or httpx.AsyncClient(timeout=5.0)
        self._owns_http = http is None
        self.gate = TokenGate(
            issuer=self.issuer,
            audience=audience,
            http=self.http,
            client_id=client_id,
            client_secret=client_secret,
            use_feed=use_feed,
            leeway=leeway,
            clock=clock,
            persistent=self._owns_http,
        )
        self.resource_metadata: ResourceMetadata | None = self.gate.resource_metadata

    @property
    def verifier(self) -> TokenVerifier:
        return self.gate.verifier

    @property
    def feed(self) -> FeedFollower | None:
        return self.gate.feed

    @feed.setter
    def feed(self, follower: FeedFollower | None) -> None:
        self.gate.feed = follower

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
            if message["type"] == "lifespan.startup":
                self.gate.start()
            elif message["type"] == "lifespan.shutdown":
                await self.gate.stop()
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
        authorization, proof, host = _read_headers(scope["headers"])
        presented = self.gate.present(authorization, proof)
        # The URL is read by a DPoP proof's htu check alone (RFC 9449 §4.3 item 9), and the
        # verifier checks no proof without one: a request without a proof needs none.
        url = "" if proof is None else _request_url(scope, {} if host is None else {"host": host})
        verified = await self.gate.verify(presented, method=method, url=url)
        resource = route.resource.format(**params)
        self.gate.check_call(verified, route.tool, resource, route.action, dpop=presented.dpop)
        await self.gate.check_live(verified, introspect=route.introspect, dpop=presented.dpop)
        return verified


#: RFC 6750 §2 (one token per request) and RFC 9449 §4.3 item 1 ("not more than one DPoP
#: HTTP request header field"); the gateway refuses the same (``gateway.streams``).
REPEATED_CREDENTIALS = Refusal(
    400, "invalid_request", "The Authorization or DPoP header is sent more than once.", False
)


def _read_headers(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[str | None, str | None, str | None]:
    """The ``Authorization``, ``DPoP`` and ``Host`` values of an ASGI request, in one pass,
    decoded alone (the other headers are never read here); a repeated ``Authorization`` or
    ``DPoP`` is refused (``REPEATED_CREDENTIALS``), a repeated ``Host`` read as its last."""
    authorization = proof = host = None
    for name, value in headers:
        name = name.lower()
        if name == b"authorization":
            if authorization is not None:
                raise REPEATED_CREDENTIALS
            authorization = value
        elif name == b"dpop":
            if proof is not None:
                raise REPEATED_CREDENTIALS
            proof = value
        elif name == b"host":
            host = value
    return (
        None if authorization is None else authorization.decode("latin-1"),
        None if proof is None else proof.decode("latin-1"),
        None if host is None else host.decode("latin-1"),
    )


async def _refuse(send: Send, refusal: Refusal, metadata: ResourceMetadata | None) -> None:
    body = refusal_body(refusal)
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", challenge(refusal, metadata).encode()),
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
