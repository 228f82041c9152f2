"""The agent SDK: a per-call access token in one call (``AgentClient``; blocking code has
``authority.sdk.sync_agent.SyncAgentClient``), and an ``httpx.Auth`` that attaches one.

Only the issuer URL is configured; every endpoint comes from discovery (RFC 8414). Each
call to ``token()`` makes a fresh attestation (RFC 7523: iss = sub = the agent, aud = the
issuer, 30 s, unique jti) and exchanges the delegation for a token that authorises
exactly one (tool, resource, action) call (RFC 8693, RFC 8707, RFC 9396), and, given
the call's arguments, to exactly those arguments (the token carries their RFC 8785
digest, ``authority.sdk.arguments``); with DPoP (RFC 9449) the token is bound to a key
the SDK holds, and each request carries a proof.

Both clients run the same flows (``authority.sdk.core``): the same requests, the same
retries of 503 and 429 (``authority.sdk.retry``), the same typed errors
(``authority.sdk.errors``). They differ only in the HTTP client they drive and the sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from typing import Any, TypeVar

import httpx

from authority.sdk.core import (
    ACCESS_TOKEN,
    ATTESTATION_LIFETIME,
    CIBA,
    CONNECT_ERRORS,
    JWT_TYPE,
    TOKEN_EXCHANGE,
    AccessToken,
    AgentProtocol,
    Flow,
    Outcome,
    PlatformToken,
    PrivateKey,
    Send,
)
from authority.sdk.errors import ApprovalPending, AuthorityClientError
from authority.sdk.retry import RetryPolicy

__all__ = [
    "ACCESS_TOKEN",
    "ATTESTATION_LIFETIME",
    "CIBA",
    "JWT_TYPE",
    "TOKEN_EXCHANGE",
    "AccessToken",
    "AgentClient",
    "ApprovalPending",
    "AuthorityClientError",
    "PlatformToken",
    "PrivateKey",
    "RetryPolicy",
    "ToolCallAuth",
]

T = TypeVar("T")


class _Agent:
    """What both clients share: the protocol state and the calls that need no I/O."""

    def __init__(
        self,
        issuer: str,
        agent_id: str,
        key: PrivateKey | None,
        delegation: str,
        *,
        dpop_key: PrivateKey | None,
        clock: Callable[[], float],
        retry: RetryPolicy | None,
        platform_token: PlatformToken | None = None,
    ) -> None:
        self._protocol = AgentProtocol(
            issuer,
            agent_id,
            key,
            delegation,
            dpop_key=dpop_key,
            clock=clock,
            retry=retry or RetryPolicy(),
            platform_token=platform_token,
        )

    @property
    def issuer(self) -> str:
        return self._protocol.issuer

    @property
    def agent_id(self) -> str:
        return self._protocol.agent_id

    @property
    def delegation(self) -> str:
        return self._protocol.delegation

    @property
    def dpop_key(self) -> PrivateKey | None:
        return self._protocol.dpop_key

    @property
    def retry(self) -> RetryPolicy:
        return self._protocol.retry

    def attestation(self, audience: str) -> str:
        """A fresh, single-use proof that this agent holds its key (RFC 7523 §3)."""
        return self._protocol.attestation(audience)

    def dpop_proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A DPoP proof for one HTTP request (RFC 9449 §4.2)."""
        return self._protocol.dpop_proof(method, url, access_token)

    def call_headers(self, token: AccessToken, method: str, url: str) -> dict[str, str]:
        """The ``Authorization`` (and, for a DPoP-bound token, ``DPoP``) headers of one call."""
        return self._protocol.call_headers(token, method, url)

    def _token_now(self, tool: str, resource: str, action: str, **kwargs: Any) -> AccessToken:
        """A token without awaiting: what ``ToolCallAuth`` needs in an ``httpx.Client``."""
        raise RuntimeError("this ToolCallAuth needs an httpx.AsyncClient")

    async def _token_later(
        self, tool: str, resource: str, action: str, **kwargs: Any
    ) -> AccessToken:
        """A token, awaited: what ``ToolCallAuth`` needs in an ``httpx.AsyncClient``."""
        raise RuntimeError("this ToolCallAuth needs an httpx.Client")

    def auth(
        self,
        tool: str,
        action: str,
        *,
        audience: str,
        resource: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> ToolCallAuth:
        """An ``httpx.Auth`` for calls to one tool: a fresh token on every request.

        Prefer ``request()``: there an ``ApprovalPending`` is raised by the SDK's own call;
        through an ``httpx.Auth`` it comes out of httpx's ``send`` instead.
        """
        return ToolCallAuth(
            self, tool, action, audience=audience, resource=resource, arguments=arguments
        )


class AgentClient(_Agent):
    """One agent, holding its own private key and the delegation its owner gave it.

    >>> client = AgentClient("https://authority.example", agent_id, key, delegation)
    >>> token = await client.token("github.issues.create", "acme/web", "create",
    ...                            audience="https://api.github.example")

    ``retry`` bounds the retries of 503 and 429 (``RetryPolicy``; ``NO_RETRIES`` for
    none); ``sleep`` is what waits between them (injected by tests).
    """

    def __init__(
        self,
        issuer: str,
        agent_id: str,
        key: PrivateKey | None,
        delegation: str,
        *,
        http: httpx.AsyncClient | None = None,
        dpop_key: PrivateKey | None = None,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
        platform_token: PlatformToken | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(
            issuer,
            agent_id,
            key,
            delegation,
            dpop_key=dpop_key,
            clock=clock,
            retry=retry,
            platform_token=platform_token,
        )
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._owns_http = http is None
        self._sleep = sleep

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        try:
            while True:
                step = flow.send(outcome)
                outcome = None
                if isinstance(step, Send):
                    try:
                        outcome = await self._http.send(step.request)
                    except CONNECT_ERRORS as exc:
                        outcome = exc
                elif self._sleep is not None:
                    await self._sleep(step.seconds)
                else:
                    await asyncio.sleep(step.seconds)
        except StopIteration as done:
            result: T = done.value
            return result

    async def metadata(self) -> dict[str, Any]:
        """The authority's RFC 8414 metadata, fetched once."""
        return await self._run(self._protocol.metadata())

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
        first, an ``AuthorityClientError`` subclass (``InvalidScope``, ``InvalidGrant``,
        ``TemporarilyUnavailable`` once retries are spent...) when the authority refuses,
        and ``UncanonicalArguments`` (a ``ValueError``) for arguments JSON cannot carry
        exactly (a non-finite number, an integer beyond 2**53).
        """
        flow = self._protocol.token(
            tool, resource, action, audience=audience, lifetime=lifetime, arguments=arguments
        )
        return await self._run(flow)

    async def _token_later(
        self, tool: str, resource: str, action: str, **kwargs: Any
    ) -> AccessToken:
        return await self.token(tool, resource, action, **kwargs)

    async def wait_for_approval(self, pending: ApprovalPending) -> AccessToken:
        """Poll the token endpoint (CIBA §10.1) until the owner approves or refuses.

        Honours ``interval`` and ``slow_down`` (CIBA §11: five seconds more); raises
        ``AccessDenied`` or ``ExpiredToken`` when the call will not be approved. Bound
        the wait with ``asyncio.timeout`` if needed.
        """
        return await self._run(self._protocol.wait_for_approval(pending))

    async def request(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        tool: str,
        action: str,
        audience: str,
        resource: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Make one tool call with ``http``, carrying a fresh token for exactly that call.

        ``resource`` defaults to the request's path; ``kwargs`` go to
        ``http.build_request`` (``json=``, ``headers=``...). The token is obtained before
        anything is sent, so ``ApprovalPending`` and refusals come out of this call.
        """
        request = http.build_request(method, url, **kwargs)
        token = await self.token(
            tool,
            resource if resource is not None else request.url.path,
            action,
            audience=audience,
            arguments=arguments,
        )
        request.headers.update(self.call_headers(token, request.method, str(request.url)))
        return await http.send(request)


class ToolCallAuth(httpx.Auth):
    """Attaches a fresh per-call token (and a DPoP proof when bound) to every request.

    ``resource`` names the tool's resource; when it is None the request's path is used.
    ``arguments``, when given, bind every token to those arguments (``AgentClient.token``).
    Made by ``AgentClient.auth`` it works with an ``httpx.AsyncClient``, by
    ``SyncAgentClient.auth`` with an ``httpx.Client``. An exception of the exchange
    (``ApprovalPending`` included) leaves httpx's ``send`` unchanged, the request unsent.
    """

    requires_request_body = False

    def __init__(
        self,
        client: _Agent,
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

    def _resource(self, request: httpx.Request) -> str:
        return self.resource if self.resource is not None else request.url.path

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.client._token_now(
            self.tool,
            self._resource(request),
            self.action,
            audience=self.audience,
            arguments=self.arguments,
        )
        request.headers.update(self.client.call_headers(token, request.method, str(request.url)))
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.client._token_later(
            self.tool,
            self._resource(request),
            self.action,
            audience=self.audience,
            arguments=self.arguments,
        )
        request.headers.update(self.client.call_headers(token, request.method, str(request.url)))
        yield request
