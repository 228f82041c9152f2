"""The agent SDK: a per-call access token in one call, and an ``httpx.Auth`` that attaches one.

Only the issuer URL is configured; every endpoint comes from discovery (RFC 8414). Each
call to ``token()`` makes a fresh attestation (RFC 7523: iss = sub = the agent, aud = the
issuer, 30 s, unique jti) and exchanges the delegation for a token that authorises
exactly one (tool, resource, action) call (RFC 8693, RFC 8707, RFC 9396), and, given
the call's arguments, to exactly those arguments (the token carries their RFC 8785
digest, ``authority.sdk.arguments``); with DPoP (RFC 9449) the token is bound to a key
the SDK holds, and each request carries a proof.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authority import protocol
from authority.protocol import access_token_hash
from authority.sdk.arguments import canonical
from authority.sdk.jws import registry

TOKEN_EXCHANGE = protocol.GRANT_TOKEN_EXCHANGE
CIBA = protocol.GRANT_CIBA
JWT_TYPE = protocol.JWT_TOKEN_TYPE
ACCESS_TOKEN = protocol.ACCESS_TOKEN_TYPE
ATTESTATION_LIFETIME = 30

PrivateKey = OKPKey | ECKey | RSAKey
_ALG_FOR = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384"}


class AuthorityClientError(Exception):
    """The authority refused: ``error`` is the RFC error code, ``status`` the HTTP status."""

    def __init__(self, error: str, description: str | None, status: int) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status


class ApprovalPending(Exception):
    """The call needs the owner's approval (OpenID CIBA poll mode, §7.3).

    ``AgentClient.wait_for_approval(pending)`` polls until the owner decides.
    """

    def __init__(self, auth_req_id: str, expires_in: int, interval: int) -> None:
        super().__init__("the owner's approval is pending")
        self.auth_req_id = auth_req_id
        self.expires_in = expires_in
        self.interval = interval


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    token_type: str  # "Bearer" or "DPoP"
    expires_at: float
    authorization_details: list[dict[str, Any]]


def _alg(key: PrivateKey) -> str:
    if isinstance(key, RSAKey):
        return "PS256"
    alg = _ALG_FOR.get((key.key_type, str(key.as_dict().get("crv"))))
    if alg is None:
        raise ValueError("unsupported agent key: use Ed25519, P-256, P-384 or RSA")
    return alg


class AgentClient:
    """One agent, holding its own private key and the delegation its owner gave it.

    >>> client = AgentClient("https://authority.example", agent_id, key, delegation)
    >>> token = await client.token("github.issues.create", "acme/web", "create",
    ...                            audience="https://api.github.example")
    """

    def __init__(
        self,
        issuer: str,
        agent_id: str,
        key: PrivateKey,
        delegation: str,
        *,
        http: httpx.AsyncClient | None = None,
        dpop_key: PrivateKey | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key.is_private:
            raise ValueError("the agent key must include its private part")
        self.issuer = issuer.rstrip("/")
        self.agent_id = agent_id
        self.delegation = delegation
        self._key = key
        self._alg = _alg(key)
        self._registry = registry([self._alg])
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._owns_http = http is None
        self._metadata: dict[str, Any] | None = None
        self._clock = clock
        self.dpop_key = dpop_key
        self._dpop_alg = _alg(dpop_key) if dpop_key is not None else None

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def metadata(self) -> dict[str, Any]:
        """The authority's RFC 8414 metadata, fetched once."""
        if self._metadata is None:
            response = await self._http.get(self.issuer + protocol.OAUTH_AUTHORIZATION_SERVER_PATH)
            _raise_for_error(response)
            metadata = response.json()
            if metadata.get("issuer") != self.issuer:
                # RFC 8414 §3.3: the issuer in the document MUST match the one configured.
                raise AuthorityClientError("invalid_metadata", "issuer mismatch", 200)
            self._metadata = metadata
        return self._metadata

    def attestation(self, audience: str) -> str:
        """A fresh, single-use proof that this agent holds its key (RFC 7523 §3)."""
        now = int(self._clock())
        claims = {
            "iss": self.agent_id,
            "sub": self.agent_id,
            "aud": audience,
            "iat": now,
            "exp": now + ATTESTATION_LIFETIME,
            "jti": secrets.token_urlsafe(16),
        }
        header = {"alg": self._alg, "kid": self._key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, registry=self._registry)

    def dpop_proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A DPoP proof for one HTTP request (RFC 9449 §4.2)."""
        if self.dpop_key is None or self._dpop_alg is None:
            raise ValueError("this client has no DPoP key")
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url.split("?", 1)[0].split("#", 1)[0],
            "iat": int(self._clock()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        header = {
            "alg": self._dpop_alg,
            "typ": protocol.DPOP_TYP,
            "jwk": self.dpop_key.as_dict(private=False),
        }
        return jwt.encode(header, claims, self.dpop_key, registry=registry([self._dpop_alg]))

    async def token(
        self,
        tool: str,
        resource: str,
        action: str,
        *,
        audience: str,
        lifetime: int | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> AccessToken:
        """Exchange the delegation for a token for exactly this one call.

        With ``arguments`` (the JSON object the call will send), the token is good only
        for those arguments: its detail carries their ``arguments_digest``, which the
        gateway or the resource server recomputes over what it receives. They are sent
        to the authority (its policies and the owner's approval see them) and never put
        in the token. Raises ``ApprovalPending`` when the owner must approve the call
        first, ``AuthorityClientError`` when the authority refuses, and
        ``UncanonicalArguments`` (a ``ValueError``) for arguments JSON cannot carry
        exactly (a non-finite number, an integer beyond 2**53).
        """
        detail: dict[str, Any] = {
            "type": "tool_call",
            "tool": tool,
            "resource": resource,
            "action": action,
        }
        if arguments is not None:
            canonical(arguments)  # refused here, before any request, if it cannot be bound
            detail[protocol.DETAIL_ARGUMENTS] = dict(arguments)
        metadata = await self.metadata()
        endpoint = metadata["token_endpoint"]
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": self.delegation,
            "subject_token_type": JWT_TYPE,
            "actor_token": self.attestation(self.issuer),
            "actor_token_type": JWT_TYPE,
            "requested_token_type": ACCESS_TOKEN,
            "resource": audience,
            "authorization_details": json.dumps([detail], allow_nan=False),
        }
        if lifetime is not None:
            form["expires_in"] = str(lifetime)
        headers = {}
        if self.dpop_key is not None:
            headers["DPoP"] = self.dpop_proof("POST", endpoint)
        response = await self._http.post(endpoint, data=form, headers=headers)
        return self._answer(response)

    async def wait_for_approval(self, pending: ApprovalPending) -> AccessToken:
        """Poll the token endpoint (CIBA §10.1) until the owner approves or refuses.

        Honours ``interval`` and ``slow_down`` (CIBA §11: five seconds more); raises
        ``AuthorityClientError`` with ``access_denied`` or ``expired_token`` when the
        call will not be approved. Bound the wait with ``asyncio.timeout`` if needed.
        """
        metadata = await self.metadata()
        endpoint = metadata["token_endpoint"]
        interval = max(1, pending.interval)
        while True:
            await asyncio.sleep(interval)
            form = {
                "grant_type": CIBA,
                "auth_req_id": pending.auth_req_id,
                "actor_token": self.attestation(self.issuer),
                "actor_token_type": JWT_TYPE,
            }
            headers = {}
            if self.dpop_key is not None:
                headers["DPoP"] = self.dpop_proof("POST", endpoint)
            response = await self._http.post(endpoint, data=form, headers=headers)
            try:
                return self._answer(response)
            except AuthorityClientError as exc:
                if exc.error == "slow_down":
                    interval += 5
                elif exc.error != "authorization_pending":
                    raise

    def _answer(self, response: httpx.Response) -> AccessToken:
        _raise_for_error(response)
        body = response.json()
        if "auth_req_id" in body and "access_token" not in body:
            raise ApprovalPending(
                str(body["auth_req_id"]), int(body["expires_in"]), int(body.get("interval", 5))
            )
        return AccessToken(
            value=body["access_token"],
            token_type=body["token_type"],
            expires_at=self._clock() + float(body["expires_in"]),
            authorization_details=body.get("authorization_details", []),
        )

    def auth(
        self,
        tool: str,
        action: str,
        *,
        audience: str,
        resource: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> ToolCallAuth:
        """An ``httpx.Auth`` for calls to one tool: a fresh token on every request."""
        return ToolCallAuth(
            self, tool, action, audience=audience, resource=resource, arguments=arguments
        )


class ToolCallAuth(httpx.Auth):
    """Attaches a fresh per-call token (and a DPoP proof when bound) to every request.

    ``resource`` names the tool's resource; when it is None the request's path is used.
    ``arguments``, when given, bind every token to those arguments (``AgentClient.token``).
    """

    requires_request_body = False

    def __init__(
        self,
        client: AgentClient,
        tool: str,
        action: str,
        *,
        audience: str,
        resource: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.tool = tool
        self.action = action
        self.audience = audience
        self.resource = resource
        self.arguments = arguments

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("ToolCallAuth needs an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        resource = self.resource if self.resource is not None else request.url.path
        token = await self.client.token(
            self.tool, resource, self.action, audience=self.audience, arguments=self.arguments
        )
        request.headers["Authorization"] = f"{token.token_type} {token.value}"
        if token.token_type == "DPoP":
            url = str(request.url)
            request.headers["DPoP"] = self.client.dpop_proof(request.method, url, token.value)
        yield request


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        error, description = str(body.get("error")), body.get("error_description")
    except (ValueError, AttributeError):
        error, description = "http_error", f"HTTP {response.status_code}"
    raise AuthorityClientError(error, description, response.status_code)
