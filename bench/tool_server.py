"""The tool servers bench/tool_check.py measures: one Starlette handler, behind each check.

The check is chosen by ``TOOL_CHECK`` (the other settings are ``TOOL_ISSUER``,
``TOOL_AUDIENCE``, ``TOOL_CLIENT_ID``, ``TOOL_CLIENT_SECRET``, all set by the benchmark):

- ``none``: the handler alone;
- ``middleware``: ``AuthorityMiddleware``, local verification and the revocation feed
  (Bearer and DPoP-bound tokens alike: the token says which);
- ``introspect``: ``AuthorityMiddleware`` with the route marked ``introspect=True``;
- ``authlib``: authlib's RFC 9068 validator (``JWTBearerTokenValidator``), EdDSA allowed;
- ``pyjwt``: PyJWT's ``jwt.decode`` with the same claim checks (typ, iss, aud, exp, iat,
  nbf with 5 s of leeway, the required claims).

The two library checks then compare the token's tool call with the route, as the
middleware does; neither has a revocation feed. ``GET /ready`` answers 200 once the
check can run (the middleware's feed has caught up), 503 before.

Run: ``uvicorn --factory bench.tool_server:from_environment``.
"""

from __future__ import annotations

import os
from typing import Any

import authlib.oauth2.rfc9068.token_validator as authlib_rfc9068  # type: ignore[import-untyped]
import httpx
import jwt as pyjwt
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authority import protocol
from authority.sdk.middleware import AuthorityMiddleware, ToolRoute

PATH = "/repos/{org}/{repo}/issues"
TOOL = "github.issues.create"
ACTION = "create"
RESOURCE = "acme/web"
CALL_PATH = "/repos/acme/web/issues"
CHECKS = ("none", "middleware", "introspect", "authlib", "pyjwt")


async def create_issue(request: Request) -> JSONResponse:
    return JSONResponse({"created": True, "number": 1})


def handler() -> Starlette:
    return Starlette(routes=[Route(PATH, create_issue, methods=["POST"])])


class Ready:
    """``GET /ready`` in front of ``app``: 200 once ``ready()`` holds."""

    def __init__(self, app: ASGIApp, ready: Any) -> None:
        self.app, self.ready = app, ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/ready":
            status = 200 if self.ready() else 503
            await Response(status_code=status)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def jwks_of(issuer: str) -> dict[str, Any]:
    with httpx.Client(timeout=10) as http:
        metadata = http.get(issuer + protocol.OAUTH_AUTHORIZATION_SERVER_PATH).json()
        jwks: dict[str, Any] = http.get(metadata["jwks_uri"]).json()
        return jwks


class LibraryCheck:
    """A library's validation of the ``Authorization: Bearer`` token, then the tool call."""

    def __init__(self, app: ASGIApp, validate: Any) -> None:
        self.app, self.validate = app, validate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.decode("latin-1").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise ValueError("no bearer token")
            claims = self.validate(token)
            details = claims["authorization_details"]
            call = details[0] if isinstance(details, list) and len(details) == 1 else {}
            if (call.get("tool"), call.get("resource"), call.get("action")) != (
                TOOL,
                RESOURCE,
                ACTION,
            ):
                raise ValueError("another tool call")
        except (ValueError, KeyError, TypeError, JoseError, pyjwt.PyJWTError, Exception):
            await Response(status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _EdDSAAllowed:
    """joserfc's ``jwt`` as authlib's validator calls it, with EdDSA allowed (joserfc's
    default list of algorithms omits it)."""

    @staticmethod
    def decode(value: str, key: Any) -> Any:
        return jose_jwt.decode(value, key=key, algorithms=["EdDSA", "ES256", "RS256"])


def authlib_validate(issuer: str, audience: str) -> Any:
    keys = KeySet.import_key_set(jwks_of(issuer))  # type: ignore[arg-type]
    authlib_rfc9068.jwt = _EdDSAAllowed

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return keys

    validator = Validator(issuer, audience)

    def validate(token: str) -> Any:
        claims = validator.authenticate_token(token)
        validator.validate_token(claims, None, None)
        return claims

    return validate


def pyjwt_validate(issuer: str, audience: str) -> Any:
    jwks = pyjwt.PyJWKSet.from_dict(jwks_of(issuer))
    keys = {key.key_id: key for key in jwks.keys}

    def validate(token: str) -> Any:
        header = pyjwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt":
            raise ValueError("wrong typ")
        key = keys[header["kid"]]
        return pyjwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            audience=audience,
            issuer=issuer,
            leeway=5,
            options={"require": ["exp", "iat", "jti", "sub", "client_id"]},
        )

    return validate


def build(check: str, issuer: str, audience: str, client_id: str, secret: str) -> ASGIApp:
    if check == "none":
        return Ready(handler(), lambda: True)
    if check in ("middleware", "introspect"):
        route = ToolRoute(
            "POST", PATH, tool=TOOL, action=ACTION, resource="{org}/{repo}",
            introspect=check == "introspect",
        )  # fmt: skip
        middleware = AuthorityMiddleware(
            handler(),
            issuer=issuer,
            audience=audience,
            routes=[route],
            client_id=client_id,
            client_secret=secret,
        )
        feed = middleware.feed
        return Ready(middleware, lambda: feed is not None and feed.healthy)
    if check == "authlib":
        return Ready(LibraryCheck(handler(), authlib_validate(issuer, audience)), lambda: True)
    if check == "pyjwt":
        return Ready(LibraryCheck(handler(), pyjwt_validate(issuer, audience)), lambda: True)
    raise ValueError(f"unknown check {check!r}: one of {', '.join(CHECKS)}")


def from_environment() -> ASGIApp:
    env = os.environ
    return build(
        env["TOOL_CHECK"],
        env.get("TOOL_ISSUER", ""),
        env.get("TOOL_AUDIENCE", ""),
        env.get("TOOL_CLIENT_ID", ""),
        env.get("TOOL_CLIENT_SECRET", ""),
    )
