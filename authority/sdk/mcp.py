"""Per-call tokens for an unmodified MCP client (or any HTTP client) talking to the gateway.

    agent = AgentClient(issuer, agent_id, key, delegation)
    auth = GatewayAuth(agent)
    async with httpx2.AsyncClient(auth=auth) as http:
        transport = streamable_http_client(gateway_url + "/u/github", http_client=http)
        async with Client(transport) as client:
            await client.call_tool("create_issue", {"repo": "acme/web", "title": "..."})

``GatewayAuth`` is an ``httpx2.Auth`` (the HTTP client of the official ``mcp`` package;
``GatewayAuthHttpx`` is the same for ``httpx``). It reads every outgoing request and
attaches a fresh token for exactly that request: for a ``tools/call`` (``prompts/get``,
``resources/read``) a token for the tool, resource and action the gateway maps the callee
to, bound to the call's arguments (their RFC 8785 digest); for anything else of an MCP
upstream a token of the upstream's session tool; for an HTTP upstream the route's call.
With a DPoP key each request also carries a proof (RFC 9449). The mapping comes from the
upstream's RFC 9728 metadata, member ``authority_calls`` (docs/gateway.md), fetched once;
its ``authorization_servers`` must name the agent's own issuer, or no token is sent.

The MCP client makes its own requests, so tokens can only be attached by an ``Auth``
inside them, and what the exchange raises comes out of that request. To have a call's
``ApprovalPending`` (or refusal) raised plainly, by an SDK call of your own, get its token
first with ``prepare_tool_call``; the request then carries it::

    try:
        await auth.prepare_tool_call(gateway_url + "/u/ops", "deploy", {"env": "prod"})
    except ApprovalPending as pending:
        auth.provide(await agent.wait_for_approval(pending))
    async with Client(transport) as client:
        await client.call_tool("deploy", {"env": "prod"})

Without it, a call that needs the owner's approval raises ``ApprovalPending`` out of the
request. The ``mcp`` client runs its requests in a task group, so it leaves ``async with
Client(...)`` inside an ``ExceptionGroup``; catch it with ``except* ApprovalPending``
(``pending_approval`` finds it in the group), and once ``AgentClient.wait_for_approval``
returns the approved token, ``provide()`` it and make the same call again::

    try:
        async with Client(transport) as client:
            await client.call_tool("deploy", {"env": "prod"})
    except* ApprovalPending as group:
        token = await agent.wait_for_approval(pending_approval(group))
        auth.provide(token)  # the same call, with the owner's approval
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import httpx2

from authority.sdk.agent import AccessToken, AgentClient, ApprovalPending
from authority.sdk.arguments import digest

__all__ = ["CallMap", "GatewayAuth", "GatewayAuthHttpx", "GatewayCalls", "pending_approval"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"
CALLS_MEMBER = "authority_calls"
_CALL_METHODS = {"tools/call": "tools", "prompts/get": "prompts", "resources/read": "resources"}


class _Request(Protocol):
    method: str

    @property
    def url(self) -> Any: ...

    @property
    def headers(self) -> Any: ...

    @property
    def content(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Call:
    """One call as the authority knows it, and the arguments its token is bound to."""

    tool: str
    resource: str
    action: str
    #: The JSON object the token is bound to; None for a token without arguments (the
    #: session, routes that bind none).
    arguments: Mapping[str, Any] | None = None

    def key(self) -> tuple[str, str, str, str | None]:
        bound = None if self.arguments is None else digest(self.arguments)
        return (self.tool, self.resource, self.action, bound)


def _fill(template: str, values: Mapping[str, Any]) -> str | None:
    scalars = {
        k: v for k, v in values.items() if isinstance(v, str | int) and not isinstance(v, bool)
    }
    try:
        return template.format_map(scalars)
    except (KeyError, ValueError, IndexError, AttributeError):
        return None


def _path_regex(template: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", template):
        if part.startswith("{") and part.endswith("}"):
            pattern += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True, slots=True)
class CallMap:
    """An upstream's ``authority_calls`` document, read."""

    resource: str  # the upstream's audience
    document: Mapping[str, Any]

    def for_request(self, method: str, path: str, body: bytes) -> Call | None:
        if self.document.get("kind") == "http":
            return self._route(method, path, body)
        session = self.document.get("session") or {}
        session_call = Call(
            str(session.get("tool")), str(session.get("resource")), str(session.get("action"))
        )
        if method != "POST":
            return session_call
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(message, dict):
            return None
        table = _CALL_METHODS.get(str(message.get("method")))
        if table is None:
            return session_call
        raw_params = message.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        name_key = "uri" if table == "resources" else "name"
        mapped = (self.document.get(table) or {}).get(params.get(name_key))
        if not isinstance(mapped, dict):
            return None
        if table == "resources":
            arguments: Any = {"uri": params.get("uri")}
        else:
            arguments = params.get("arguments")
            arguments = {} if arguments is None else arguments
        resource = (
            _fill(str(mapped["resource"]), arguments) if isinstance(arguments, dict) else None
        )
        if resource is None:
            return None
        return Call(str(mapped["tool"]), resource, str(mapped["action"]), arguments)

    def _route(self, method: str, path: str, body: bytes) -> Call | None:
        base = urlsplit(self.resource).path.rstrip("/")
        if not path.startswith(base):
            return None
        relative = path[len(base) :] or "/"
        for route in self.document.get("routes") or []:
            if route.get("method") != method:
                continue
            found = _path_regex(str(route["path"])).match(relative)
            if found is None:
                continue
            resource = _fill(str(route["resource"]), found.groupdict())
            if resource is None:
                return None
            arguments = None
            if route.get("bind_arguments"):
                try:
                    arguments = json.loads(body) if body else {}
                except (ValueError, RecursionError):
                    return None
                if not isinstance(arguments, dict):
                    return None
            return Call(str(route["tool"]), resource, str(route["action"]), arguments)
        return None


def pending_approval(error: BaseException) -> ApprovalPending | None:
    """The ``ApprovalPending`` in ``error`` or in the (nested) exception group it is."""
    if isinstance(error, ApprovalPending):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = pending_approval(inner)
            if found is not None:
                return found
    return None


class GatewayCalls:
    """What both auth classes share: the maps of the upstreams, the approved tokens."""

    def __init__(self, agent: AgentClient, *, http: httpx.AsyncClient | None = None) -> None:
        self.agent = agent
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._owns_http = http is None
        self._maps: dict[str, CallMap] = {}
        self._approved: dict[tuple[str, str, str, str | None], AccessToken] = {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def provide(self, token: AccessToken) -> None:
        """An approved token (``AgentClient.wait_for_approval``), used by the call it names."""
        details = token.authorization_details[0] if token.authorization_details else {}
        key = (
            str(details.get("tool")),
            str(details.get("resource")),
            str(details.get("action")),
            details.get("arguments_digest"),
        )
        self._approved[key] = token

    async def prepare_tool_call(
        self, url: str, name: str, arguments: Mapping[str, Any] | None = None
    ) -> None:
        """Get now the token of the ``tools/call`` of ``name`` with ``arguments`` at ``url``
        (an upstream's gateway URL), for the call that follows to carry.

        Raises ``ApprovalPending`` and the authority's refusals from here, plainly, rather
        than from inside the MCP client's request; ``LookupError`` when the gateway maps no
        call to it (the gateway would refuse the request).
        """
        call_map = await self.call_map(url)
        if call_map is None:
            raise LookupError("the gateway declares no calls for this URL")
        params: dict[str, Any] = {"name": name, "arguments": dict(arguments or {})}
        message = {"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": params}
        call = call_map.for_request("POST", urlsplit(url).path, json.dumps(message).encode())
        if call is None:
            raise LookupError("the gateway maps no call to this tool")
        if call.key() not in self._approved:
            self._approved[call.key()] = await self.agent.token(
                call.tool,
                call.resource,
                call.action,
                audience=call_map.resource,
                arguments=call.arguments,
            )

    async def call_map(self, url: str) -> CallMap | None:
        """The map of the upstream ``url`` belongs to (its metadata, fetched once)."""
        parts = urlsplit(url)
        segments = parts.path.split("/")
        # The gateway mounts each upstream at /u/<name>: its resource is that prefix.
        prefix = "/".join(segments[:3]) if len(segments) >= 3 and segments[1] == "u" else parts.path
        resource = f"{parts.scheme}://{parts.netloc}{prefix}"
        if resource in self._maps:
            return self._maps[resource]
        response = await self._http.get(f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{prefix}")
        if response.status_code != 200:
            return None
        document = response.json()
        calls = document.get(CALLS_MEMBER)
        # RFC 9728 §3.3: the metadata must be that of the resource it was fetched for; and
        # only the agent's own authority may issue its tokens (no mix-up).
        if (
            document.get("resource") != resource
            or self.agent.issuer not in (document.get("authorization_servers") or [])
            or not isinstance(calls, dict)
        ):
            return None
        self._maps[resource] = CallMap(resource, calls)
        return self._maps[resource]

    async def headers(self, request: _Request) -> dict[str, str]:
        """The ``Authorization`` (and ``DPoP``) headers for one request; {} when the gateway
        declares no call for it (it will then refuse the request)."""
        url = str(request.url)
        call_map = await self.call_map(url)
        if call_map is None:
            return {}
        call = call_map.for_request(request.method, urlsplit(url).path, request.content)
        if call is None:
            return {}
        token = self._approved.pop(call.key(), None)
        if token is None:
            token = await self.agent.token(
                call.tool,
                call.resource,
                call.action,
                audience=call_map.resource,
                arguments=call.arguments,
            )
        headers = {"Authorization": f"{token.token_type} {token.value}"}
        if token.token_type == "DPoP":
            headers["DPoP"] = self.agent.dpop_proof(request.method, url, token.value)
        return headers


class _CallsAuth:
    """What both ``Auth`` flavours share: the calls, an approved token, closing."""

    requires_request_body = True

    def __init__(self, agent: AgentClient | GatewayCalls) -> None:
        self.calls = agent if isinstance(agent, GatewayCalls) else GatewayCalls(agent)

    def provide(self, token: AccessToken) -> None:
        self.calls.provide(token)

    async def prepare_tool_call(
        self, url: str, name: str, arguments: Mapping[str, Any] | None = None
    ) -> None:
        """``GatewayCalls.prepare_tool_call``: ``ApprovalPending`` raised here, plainly."""
        await self.calls.prepare_tool_call(url, name, arguments)

    async def aclose(self) -> None:
        await self.calls.aclose()


class GatewayAuth(_CallsAuth, httpx2.Auth):
    """``GatewayCalls`` as an ``httpx2.Auth``, for the official ``mcp`` client."""

    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("GatewayAuth needs an httpx2.AsyncClient")

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        await request.aread()
        request.headers.update(await self.calls.headers(request))
        yield request


class GatewayAuthHttpx(_CallsAuth, httpx.Auth):
    """``GatewayCalls`` as an ``httpx.Auth``."""

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("GatewayAuthHttpx needs an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        request.headers.update(await self.calls.headers(request))
        yield request
