"""The upstream credential: added by the gateway to every forwarded request, never seen by
the agent (MCP authorization, "Token Passthrough": the gateway MUST NOT pass the agent's
token on; it authenticates to the upstream with a credential of its own).

``header``, ``bearer`` and ``basic`` are static; ``oauth2`` is an OAuth 2.0 client
credentials grant (RFC 6749 §4.4) at the upstream's token endpoint, cached until
``REFRESH_MARGIN`` seconds before it expires and fetched again once by whichever call
needs it first. ``secrets()`` lists every form in which the credential could come back in
an answer (the value, the header, the Basic encoding, the current access token), so that
the proxy can strip it from what the agent receives.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from urllib.parse import quote_plus

import httpx2

from authority.gateway.config import Credential

REFRESH_MARGIN = 30.0
#: What every stripped secret is replaced with.
REDACTED = b"[redacted]"


class UpstreamCredentialUnavailable(Exception):
    """The upstream's token endpoint did not issue a token: nothing is forwarded."""


class UpstreamCredential:
    def __init__(
        self,
        config: Credential,
        http: httpx2.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._secret = config.secret.read().get_secret_value() if config.secret else ""
        self._token: str | None = None
        self._token_until = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def header_name(self) -> str | None:
        """The request header the credential occupies (an agent's copy of it is dropped)."""
        if self.config.type == "none":
            return None
        return self.config.name.lower() if self.config.type == "header" else "authorization"

    async def header(self) -> tuple[str, str] | None:
        kind = self.config.type
        if kind == "none":
            return None
        if kind == "header":
            return self.config.name, self._secret
        if kind == "bearer":
            return "Authorization", f"Bearer {self._secret}"
        if kind == "basic":
            return "Authorization", "Basic " + self._basic()
        return "Authorization", f"Bearer {await self._access_token()}"

    def secrets(self) -> list[bytes]:
        """Every form of the credential an upstream could echo back (longest first)."""
        found = [self._secret] if self._secret else []
        if self.config.type == "basic":
            found.append(self._basic())
        if self._token:
            found.append(self._token)
        encoded = {s.encode() for s in found if len(s) >= 4}
        return sorted(encoded, key=len, reverse=True)

    def _basic(self) -> str:
        pair = f"{self.config.username}:{self._secret}".encode()
        return base64.b64encode(pair).decode("ascii")

    async def _access_token(self) -> str:
        if self._token is not None and self._clock() < self._token_until:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._token_until:
                return self._token
            self._token, lifetime = await self._grant()
            self._token_until = self._clock() + max(0.0, lifetime - REFRESH_MARGIN)
            return self._token

    async def _grant(self) -> tuple[str, float]:
        config = self.config
        assert config.token_url is not None
        assert config.client_id is not None
        form = {"grant_type": "client_credentials"}
        if config.scope:
            form["scope"] = config.scope
        if config.resource:
            form["resource"] = config.resource
        # RFC 6749 §2.3.1: client_secret_basic, both parts form-urlencoded first.
        auth = httpx2.BasicAuth(quote_plus(config.client_id), quote_plus(self._secret))
        try:
            response = await self._http.post(config.token_url, data=form, auth=auth)
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 300))
        except (httpx2.HTTPError, ValueError, KeyError, TypeError):
            raise UpstreamCredentialUnavailable from None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise UpstreamCredentialUnavailable
        return token, lifetime
