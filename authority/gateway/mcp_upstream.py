"""An MCP server (Streamable HTTP) behind the gateway, at ``/u/<name>``.

Every POST carries one JSON-RPC message (``jsonrpc.classify``: batches and unknown
methods are refused there, never forwarded). A call (``tools/call``, ``prompts/get``,
``resources/read``) needs a per-call token for exactly the mapped tool, the resource its
template makes of the call's arguments, and the action, whose ``arguments_digest`` is the
RFC 8785 digest of those arguments; a tool call must also pass the command rules. Every
other message, and the GET stream and DELETE of a handshake-era session, needs a token of
the upstream's session tool (``mcp.session.<name>``, resource ``<name>``, action
``connect``): it names the agent and its delegation and nothing more. The routing headers
of 2026-07-28 (``Mcp-Method``, ``Mcp-Name``) must agree with the body, so that what was
checked is what the upstream acts on.

Answers go back through ``mcp_answer``: masked, lists cut to what the delegation covers,
upstream secrets stripped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx2

from authority.gateway.calls import (
    UNRECORDED,
    CallLog,
    Upstream,
    arguments_digest,
    resource_of,
)
from authority.gateway.config import SESSION_ACTION, McpCall
from authority.gateway.coverage import Coverage, coverage_of
from authority.gateway.credentials import UpstreamCredentialUnavailable
from authority.gateway.jsonrpc import (
    CALLS,
    HEADER_MISMATCH,
    INVALID_REQUEST,
    LISTS,
    UNAVAILABLE,
    Message,
    RpcRefusal,
    classify,
    decode_header_value,
)
from authority.gateway.mcp_answer import Answer, refuse, rpc
from authority.gateway.sessions import HEADER as SESSION_HEADER
from authority.gateway.streams import (
    Receive,
    Scope,
    Send,
    Tap,
    TooLarge,
    header_map,
    read_whole,
    repeats_a_checked_header,
    request_headers,
    send_simple,
    until_disconnect,
)
from authority.sdk.arguments import matches
from authority.sdk.enforcement import Refusal

log = logging.getLogger("authority.gateway.mcp")

#: What is checked must be what is forwarded: one copy of each checked header.
REPEATED = RpcRefusal(400, INVALID_REQUEST, "A header the gateway checks is sent more than once.")


class McpUpstream:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        config = upstream.config
        self.maps: Mapping[str, Mapping[str, McpCall]] = {
            "tools/call": config.tools,
            "prompts/get": config.prompts,
            "resources/read": config.resources,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        method = str(scope["method"])
        if path not in ("", "/"):
            await send_simple(send, 404, b"", [])
            return
        if method == "POST":
            await self._post(scope, receive, send)
        elif method in ("GET", "DELETE"):
            await self._session_request(scope, receive, send, method)
        else:
            await send_simple(send, 405, b"", [(b"allow", b"GET, POST, DELETE")])

    # --- POST: one JSON-RPC message ---------------------------------------------------
    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = self.upstream
        call = CallLog(upstream, "mcp", "POST", "")
        tap = Tap(upstream.settings.record_head_bytes)
        message: Message | None = None
        try:
            if upstream.recording.down:
                raise rpc(UNRECORDED)
            if repeats_a_checked_header(scope):
                raise REPEATED
            try:
                body = tap.feed(await read_whole(receive, upstream.settings.max_message_bytes))
            except TooLarge:
                raise RpcRefusal(413, INVALID_REQUEST, "The message is too large.") from None
            call.request = tap.recorded()
            message = classify(body)
            call.method = message.method or "response"
            call.target = message.callee or call.method
            headers = header_map(scope)
            _check_routing_headers(headers, message)
            coverage = await self._authorise(scope, headers, message, call)
        except RpcRefusal as refusal:
            await self._refuse(send, refusal, call, message)
            return
        await self._forward(scope, receive, send, call, "POST", body, message, coverage)

    async def _authorise(
        self, scope: Scope, headers: Mapping[str, str], message: Message, call: CallLog
    ) -> Coverage | None:
        upstream = self.upstream
        gate = upstream.gate
        presented = gate.presented(headers)
        try:
            token = await gate.verify(
                presented, method=str(scope["method"]), url=upstream.url_of(str(scope["path"]))
            )
            call.accepted(token)
            if message.method is not None and message.method in CALLS:
                mapped = self.maps[message.method].get(message.callee or "")
                if mapped is None:
                    raise Refusal(
                        403,
                        "insufficient_scope",
                        "No tool is declared for this call.",
                        presented.dpop,
                    )
                arguments = message.arguments
                resource = (
                    resource_of(mapped.resource, arguments) if isinstance(arguments, dict) else None
                )
                if resource is None:
                    raise Refusal(
                        403, "insufficient_scope", "The call names no resource.", presented.dpop
                    )
                gate.check_call(token, mapped.tool, resource, mapped.action, dpop=presented.dpop)
                expected = arguments_digest(token)
                if expected is None or not matches(arguments, expected):
                    raise Refusal(
                        403,
                        "insufficient_scope",
                        "The token is for other arguments.",
                        presented.dpop,
                    )
                commands = upstream.seams.commands
                if commands is not None and message.method == "tools/call":
                    rule = commands.blocks(mapped.tool, arguments)
                    if rule is not None:
                        call.blocked_by = rule
                        raise Refusal(
                            403,
                            "insufficient_scope",
                            "A command rule forbids this call.",
                            presented.dpop,
                        )
                await gate.check_live(token, introspect=mapped.introspect, dpop=presented.dpop)
                return None
            config = upstream.config
            gate.check_call(token, config.session, config.name, SESSION_ACTION, dpop=presented.dpop)
            if message.method in LISTS:
                # A list is cut to the delegation's coverage, which introspection tells.
                answer = await gate.check_live(token, introspect=True, dpop=presented.dpop)
                return coverage_of(answer, config)
            await gate.check_live(token, introspect=False, dpop=presented.dpop)
            return None
        except Refusal as refusal:
            raise rpc(refusal, message.id) from None

    # --- GET (the session's stream) and DELETE (its end) ------------------------------
    async def _session_request(
        self, scope: Scope, receive: Receive, send: Send, method: str
    ) -> None:
        upstream = self.upstream
        call = CallLog(upstream, "mcp", method, "session")
        headers = header_map(scope)
        presented = upstream.gate.presented(headers)
        try:
            if upstream.recording.down:
                raise rpc(UNRECORDED)
            if repeats_a_checked_header(scope):
                raise REPEATED
            try:
                token = await upstream.gate.verify(
                    presented, method=method, url=upstream.url_of(str(scope["path"]))
                )
                call.accepted(token)
                config = upstream.config
                upstream.gate.check_call(
                    token, config.session, config.name, SESSION_ACTION, dpop=presented.dpop
                )
                await upstream.gate.check_live(token, introspect=False, dpop=presented.dpop)
            except Refusal as refusal:
                raise rpc(refusal) from None
        except RpcRefusal as refusal:
            await self._refuse(send, refusal, call, None)
            return
        await self._forward(scope, receive, send, call, method, None, None, None)

    # --- forwarding -----------------------------------------------------------------
    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: CallLog,
        method: str,
        body: bytes | None,
        message: Message | None,
        coverage: Coverage | None,
    ) -> None:
        upstream = self.upstream
        drop = [upstream.credential.header_name or "", SESSION_HEADER]
        headers = request_headers(scope, drop=drop)
        token = call.token
        assert token is not None  # nothing is forwarded without an accepted token
        presented = header_map(scope).get(SESSION_HEADER)
        if presented is not None:
            session = upstream.sessions.unwrap(presented, token.delegation_id)
            if session is None:
                unknown = RpcRefusal(404, INVALID_REQUEST, "Session not found.")
                await self._refuse(send, unknown, call, message)
                return
            headers.append((SESSION_HEADER, session))
        if upstream.recording.down:
            await self._refuse(send, rpc(UNRECORDED), call, message)
            return
        try:
            credential = await upstream.credential.header()
            if credential is not None:
                headers.append(credential)
            request = upstream.http.build_request(
                method, upstream.config.url, headers=headers, content=body
            )
            response = await upstream.http.send(request, stream=True)
        except (httpx2.HTTPError, UpstreamCredentialUnavailable) as exc:
            log.warning("upstream %s unreachable: %s", upstream.name, type(exc).__name__)
            refusal = RpcRefusal(502, UNAVAILABLE, "The upstream did not answer.")
            await self._refuse(send, refusal, call, message, outcome="upstream_error")
            return
        try:
            relay = Answer(self.upstream, call, message, coverage).relay(send, response)
            await until_disconnect(receive, relay)
        finally:
            await response.aclose()

    async def _refuse(
        self,
        send: Send,
        refusal: RpcRefusal,
        call: CallLog,
        message: Message | None,
        *,
        outcome: Any = None,
    ) -> None:
        await refuse(self.upstream, send, refusal, call, message, outcome=outcome)


def _check_routing_headers(headers: Mapping[str, str], message: Message) -> None:
    """2026-07-28: ``Mcp-Method`` and ``Mcp-Name`` mirror the body; when present they must
    agree with it, or an upstream routing on them would act on another call."""
    method = headers.get("mcp-method")
    if method is not None and method != message.method:
        raise RpcRefusal(400, HEADER_MISMATCH, "Mcp-Method does not match the body.", message.id)
    name = headers.get("mcp-name")
    if name is not None and message.method in CALLS and decode_header_value(name) != message.callee:
        raise RpcRefusal(400, HEADER_MISMATCH, "Mcp-Name does not match the body.", message.id)
