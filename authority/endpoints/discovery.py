"""Discovery: the metadata documents (RFC 8414 §3, OpenID Discovery §4) and the JWKS (RFC 7517).

The metadata is rendered once, when the routes are built; the JWKS is read from the
keyring's memory on every request (no I/O), because keys come and go while it runs.

Caching of the JWKS: ``max-age`` is ``jwks_max_age`` seconds, and the settings make a
new key wait ``key_activation_delay >= jwks_max_age + keyring_refresh_interval +
clock_skew`` seconds between being published and signing anything. So a verifier that
honours the header has fetched every key before any token signed with it can reach it;
and a retired key stays published far longer than ``max-age`` (``retired_key_grace``), so
a cached copy never lacks a key whose tokens are still alive.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authority.context import Services
from authority.metadata import build_metadata, build_openid_configuration
from authority.settings import Settings

from . import paths
from .guard import endpoint
from .http import json_response

#: RFC 8414 §3.2 does not fix a lifetime; the document changes only with a redeploy.
METADATA_MAX_AGE = 3600


def routes(settings: Settings) -> list[BaseRoute]:
    rendered = orjson.dumps(build_metadata(settings))
    rendered_openid = orjson.dumps(build_openid_configuration(settings))
    metadata_headers = {"Cache-Control": f"public, max-age={METADATA_MAX_AGE}"}
    jwks_headers = {"Cache-Control": f"public, max-age={settings.jwks_max_age}"}

    async def metadata(request: Request) -> Response:
        return Response(rendered, media_type="application/json", headers=metadata_headers)

    async def openid_configuration(request: Request) -> Response:
        return Response(rendered_openid, media_type="application/json", headers=metadata_headers)

    @endpoint
    async def jwks(request: Request) -> Response:
        services: Services = request.app.state.services
        # RFC 7517 §8.5.1 registers application/jwk-set+json; plain JSON parsers and most
        # JWKS clients expect application/json, which the RFC's examples use too.
        return json_response(services.keyring.jwks(), headers=jwks_headers)

    return [
        Route(paths.OAUTH_AUTHORIZATION_SERVER, metadata, methods=["GET"]),
        Route(paths.OPENID_CONFIGURATION, openid_configuration, methods=["GET"]),
        Route(paths.JWKS, jwks, methods=["GET"]),
    ]
