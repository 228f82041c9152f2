"""The agent SDK for blocking code: ``AgentClient``'s calls, made with an ``httpx.Client``.

The flows are the async client's (``authority.sdk.core``): only sending and sleeping
differ, so both make the same requests, retry alike and raise the same exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from authority.sdk.agent import _Agent
from authority.sdk.core import (
    CONNECT_ERRORS,
    AccessToken,
    Flow,
    Outcome,
    PlatformToken,
    PrivateKey,
    Send,
)
from authority.sdk.errors import ApprovalPending
from authority.sdk.retry import RetryPolicy

__all__ = ["SyncAgentClient"]

T = TypeVar("T")


class SyncAgentClient(_Agent):
    """``AgentClient`` for blocking code: the same calls, made with an ``httpx.Client``."""

    def __init__(
        self,
        issuer: str,
        agent_id: str,
        key: PrivateKey | None,
        delegation: str,
        *,
        http: httpx.Client | None = None,
        dpop_key: PrivateKey | None = None,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
        platform_token: PlatformToken | None = None,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = http or httpx.Client(timeout=10.0)
        self._owns_http = http is None
        self._sleep = sleep

    def __enter__(self) -> SyncAgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        try:
            while True:
                step = flow.send(outcome)
                outcome = None
                if isinstance(step, Send):
                    try:
                        outcome = self._http.send(step.request)
                    except CONNECT_ERRORS as exc:
                        outcome = exc
                else:
                    self._sleep(step.seconds)
        except StopIteration as done:
            result: T = done.value
            return result

    def metadata(self) -> dict[str, Any]:
        """The authority's RFC 8414 metadata, fetched once."""
        return self._run(self._protocol.metadata())

    def token(
        self,
        tool: str,
        resource: str,
        action: str,
        *,
        audience: str,
        lifetime: int | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> AccessToken:
        """``AgentClient.token``, blocking."""
        flow = self._protocol.token(
            tool, resource, action, audience=audience, lifetime=lifetime, arguments=arguments
        )
        return self._run(flow)

    def _token_now(self, tool: str, resource: str, action: str, **kwargs: Any) -> AccessToken:
        return self.token(tool, resource, action, **kwargs)

    def wait_for_approval(self, pending: ApprovalPending) -> AccessToken:
        """``AgentClient.wait_for_approval``, blocking (the approval's expiry bounds it)."""
        return self._run(self._protocol.wait_for_approval(pending))

    def request(
        self,
        http: httpx.Client,
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
        """``AgentClient.request``, blocking."""
        request = http.build_request(method, url, **kwargs)
        token = self.token(
            tool,
            resource if resource is not None else request.url.path,
            action,
            audience=audience,
            arguments=arguments,
        )
        request.headers.update(self.call_headers(token, request.method, str(request.url)))
        return http.send(request)
