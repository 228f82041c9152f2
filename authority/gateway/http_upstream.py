"""An HTTP API behind the gateway: a route table of calls, each forwarded only when the
agent's token names exactly that call, bodies streamed both ways.

Per request: the route (method and path template, the middleware's ``ToolRoute``) must be
declared, else 403; the token is verified for this audience and must name the route's
tool, resource (the template over the path parameters) and action; a route with
``bind_arguments`` reads the JSON body whole and requires the token's
``arguments_digest`` to be its RFC 8785 digest; the command rules may still refuse it;
then the token must be live (feed, or introspection). Only then does anything reach the
upstream: the agent's headers less hop-by-hop fields and its ``Authorization``/``DPoP``,
plus the upstream credential. The answer streams back with the credential stripped and,
with a masking policy, masked chunk by chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import httpx2

from authority.gateway.calls import (
    UNRECORDED,
    CallLog,
    Upstream,
    arguments_digest,
    bad_gateway,
    blocked,
    other_arguments,
)
from authority.gateway.credentials import UpstreamCredentialUnavailable
from authority.gateway.streams import (
    Receive,
    Scope,
    Send,
    Tap,
    TooLarge,
    header_map,
    loads_unique,
    read_whole,
    repeats_a_checked_header,
    request_body,
    request_headers,
    response_headers,
    send_simple,
)
from authority.sdk.arguments import UncanonicalArguments, matches
from authority.sdk.enforcement import Refusal, challenge, refusal_body
from authority.sdk.middleware import ToolRoute

log = logging.getLogger("authority.gateway.http")

NO_ROUTE = Refusal(403, "insufficient_scope", "No tool is declared for this route.", False)
BAD_PATH = Refusal(400, "invalid_request", "The request path is not in normal form.", False)
#: Encoded separators and dot segments: the path an upstream would act on after
#: decoding or normalising (RFC 3986 §5.2.4) could be another route than the one checked.
_ENCODED = (b"%2f", b"%5c", b"%2e", b"%00")
QUERY_REFUSED = Refusal(
    400, "invalid_request", "This route takes no query: the token does not cover one.", False
)
REPEATED_HEADER = Refusal(
    400, "invalid_request", "A header the gateway checks is sent more than once.", False
)
BAD_BODY = Refusal(400, "invalid_request", "The body is not the call's JSON arguments.", False)


class HttpUpstream:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.routes = [
            (
                ToolRoute(
                    r.method,
                    r.path,
                    tool=r.tool,
                    action=r.action,
                    resource=r.resource,
                    introspect=r.introspect,
                ),
                r.bind_arguments,
                r.allow_query,
            )
            for r in upstream.config.routes
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        method = str(scope["method"])
        call = CallLog(self.upstream, "http", method, path or "/")
        try:
            if self.upstream.recording.down:
                raise UNRECORDED
            if not _normal(scope, path, self.upstream.config.mount):
                raise BAD_PATH
            if repeats_a_checked_header(scope):
                raise REPEATED_HEADER
            body = await self._authorise(scope, receive, call, method, path)
        except Refusal as refusal:
            await self.refuse(send, refusal, call)
            return
        await self._forward(scope, receive, send, call, method, path, body)

    async def _authorise(
        self, scope: Scope, receive: Receive, call: CallLog, method: str, path: str
    ) -> bytes | None:
        upstream = self.upstream
        route, bind, allow_query, params = self._route(method, path or "/")
        if scope.get("query_string") and not allow_query:
            raise QUERY_REFUSED
        headers = header_map(scope)
        presented = upstream.gate.presented(headers)
        token = await upstream.gate.verify(
            presented, method=method, url=upstream.url_of(str(scope["path"]))
        )
        call.accepted(token)
        resource = route.resource.format(**params)
        upstream.gate.check_call(token, route.tool, resource, route.action, dpop=presented.dpop)
        body: bytes | None = None
        arguments: Mapping[str, Any] = params
        if bind:
            try:
                body = await read_whole(receive, upstream.settings.max_message_bytes)
                value = loads_unique(body) if body else {}
            except (TooLarge, ValueError, RecursionError):
                raise BAD_BODY from None
            expected = arguments_digest(token)
            try:
                if expected is None or not matches(value, expected):
                    raise other_arguments(presented.dpop)
            except UncanonicalArguments:
                raise other_arguments(presented.dpop) from None
            arguments = value if isinstance(value, dict) else {"body": value}
        if upstream.seams.commands is not None:
            rule = upstream.seams.commands.blocks(route.tool, arguments)
            if rule is not None:
                call.blocked_by = rule
                raise blocked(presented.dpop)
        await upstream.gate.check_live(token, introspect=route.introspect, dpop=presented.dpop)
        return body

    def _upstream_path(self, scope: Scope, path: str) -> str:
        """The path as the agent sent it (its percent-encoding kept), less the mount."""
        raw = scope.get("raw_path")
        if not isinstance(raw, bytes):
            return quote(path, safe="/:@!$&'()*+,;=-._~")
        return raw.decode("latin-1")[len(self.upstream.config.mount) :]

    def _route(self, method: str, path: str) -> tuple[ToolRoute, bool, bool, dict[str, str]]:
        for route, bind, allow_query in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, bind, allow_query, params
        raise NO_ROUTE

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: CallLog,
        method: str,
        path: str,
        body: bytes | None,
    ) -> None:
        upstream = self.upstream
        settings = upstream.settings
        url = upstream.config.url + self._upstream_path(scope, path)
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = request_headers(scope, drop=[upstream.credential.header_name or ""])
        agent_headers = header_map(scope)
        request_tap = Tap(settings.record_head_bytes)
        content: Any
        if body is not None:
            content = request_tap.feed(body)
        elif "content-length" in agent_headers or "transfer-encoding" in agent_headers:
            content = request_body(receive, request_tap)
            if "content-length" in agent_headers:
                headers.append(("content-length", agent_headers["content-length"]))
        else:
            content = None
        if upstream.recording.down:
            await self.refuse(send, UNRECORDED, call)
            return
        try:
            credential = await upstream.credential.header()
            if credential is not None:
                headers.append(credential)
            request = upstream.http.build_request(method, url, headers=headers, content=content)
            response = await upstream.http.send(request, stream=True)
        except (httpx2.HTTPError, UpstreamCredentialUnavailable) as exc:
            log.warning("upstream %s unreachable: %s", upstream.name, type(exc).__name__)
            call.request = request_tap.recorded()
            await self.refuse(send, bad_gateway(), call, outcome="upstream_error")
            return
        call.request = request_tap.recorded()
        await self._answer(send, call, response)

    async def _answer(self, send: Send, call: CallLog, response: httpx2.Response) -> None:
        upstream = self.upstream
        scrubber = upstream.scrubber()
        masking = upstream.seams.masking
        masker = masking.stream_masker(call.tool) if masking is not None else None
        tap = Tap(upstream.settings.record_head_bytes)
        outcome: Any = "forwarded"
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    # The upstream's own challenges concern the gateway's credential.
                    "headers": response_headers(
                        response.headers.multi_items(), scrubber, drop=("www-authenticate",)
                    ),
                }
            )
            try:
                async for chunk in response.aiter_bytes():
                    out = scrubber.feed(chunk)
                    if masker is not None:
                        out = masker.feed(out)
                    if out:
                        await send(
                            {"type": "http.response.body", "body": tap.feed(out), "more_body": True}
                        )
            except httpx2.HTTPError:
                outcome = "upstream_error"
            rest = scrubber.finish()
            if masker is not None:
                rest = masker.feed(rest) + masker.finish()
                call.count_masked(masker.counts)
            await send({"type": "http.response.body", "body": tap.feed(rest)})
        finally:
            await response.aclose()
        call.response = tap.recorded()
        await call.finish(outcome, response.status_code)

    async def refuse(
        self, send: Send, refusal: Refusal, call: CallLog, *, outcome: Any = None
    ) -> None:
        body = refusal_body(refusal)
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
        ]
        if refusal.status in (401, 403):
            challenge_value = challenge(refusal, self.upstream.metadata)
            headers.append((b"www-authenticate", challenge_value.encode()))
        if refusal.status == 503:
            headers.append((b"retry-after", b"1"))
        await send_simple(send, refusal.status, body, headers)
        if outcome is None:
            outcome = "blocked" if call.blocked_by else "refused"
        tap = Tap(self.upstream.settings.record_head_bytes)
        tap.feed(body)
        call.response = tap.recorded()
        await call.finish(outcome, refusal.status)


def _normal(scope: Scope, path: str, mount: str) -> bool:
    """No dot segment, no empty segment, no encoded separator, dot or NUL, and the raw
    path is the mount and then the path: what is matched against the routes is what the
    upstream receives."""
    segments = path.split("/")[1:]
    if any(s in ("", ".", "..") for s in segments[:-1]) or (
        segments and segments[-1] in (".", "..")
    ):
        return False
    if "\x00" in path or "\\" in path:
        return False
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return True
    if not raw.startswith(mount.encode("ascii")) or any(t in raw.lower() for t in _ENCODED):
        return False
    try:
        return unquote_to_bytes(raw).decode("utf-8") == str(scope["path"])
    except UnicodeDecodeError:
        return False
