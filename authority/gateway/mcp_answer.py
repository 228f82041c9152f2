"""The answer of an MCP upstream on its way to the agent, and the gateway's own refusals.

A JSON body is read whole (within ``max_message_bytes``) and handed over only once its
record is kept; an event stream goes event by event. Each JSON-RPC message is masked (its
``result``, ``params`` or ``error``), the answer to a list is cut to what the delegation
covers, and every upstream secret is stripped. A refusal is a JSON-RPC error with the
request's id, the HTTP status of its cause and, for 401 and 403, the challenge naming the
upstream's RFC 9728 metadata.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2

from authority.gateway.calls import UNRECORDED, CallLog, Upstream
from authority.gateway.coverage import Coverage
from authority.gateway.jsonrpc import (
    CALLS,
    FORBIDDEN,
    LISTS,
    UNAUTHORIZED,
    UNAVAILABLE,
    Event,
    EventTooLarge,
    Message,
    RpcRefusal,
    SseEvents,
    error_body,
)
from authority.gateway.sessions import HEADER
from authority.gateway.streams import Send, Tap, response_headers, send_simple
from authority.sdk.enforcement import Refusal, challenge

SESSION_HEADER = HEADER.encode()
_CODES = {401: UNAUTHORIZED, 403: FORBIDDEN}
#: The upstream's own challenges concern the gateway's credential, not the agent.
_DROP_BACK = ("www-authenticate",)


class _AuthRefusal(RpcRefusal):
    def __init__(self, refusal: Refusal, request_id: str | int | None) -> None:
        code = _CODES.get(refusal.status, UNAVAILABLE)
        super().__init__(refusal.status, code, refusal.description, request_id)
        self.refusal = refusal


def rpc(refusal: Refusal, request_id: str | int | None = None) -> RpcRefusal:
    return _AuthRefusal(refusal, request_id)


async def refuse(
    upstream: Upstream,
    send: Send,
    refusal: RpcRefusal,
    call: CallLog,
    message: Message | None,
    *,
    outcome: Any = None,
) -> None:
    request_id = refusal.id if refusal.id is not None else (message.id if message else None)
    body = error_body(refusal.code, refusal.message, request_id)
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    auth = getattr(refusal, "refusal", None)
    if isinstance(auth, Refusal) and auth.status in (401, 403):
        headers.append((b"www-authenticate", challenge(auth, upstream.metadata).encode()))
    if refusal.status == 503:
        headers.append((b"retry-after", b"1"))
    await send_simple(send, refusal.status, body, headers)
    tap = Tap(upstream.settings.record_head_bytes)
    tap.feed(body)
    call.response = tap.recorded()
    if outcome is None:
        outcome = "blocked" if call.blocked_by else "refused"
    await call.finish(outcome, refusal.status)


class Answer:
    """The upstream's answer to one message, relayed message by message."""

    def __init__(
        self,
        upstream: Upstream,
        call: CallLog,
        message: Message | None,
        coverage: Coverage | None,
    ) -> None:
        self.upstream = upstream
        self.call = call
        self.message = message
        self.coverage = coverage
        self.scrubber = upstream.scrubber()
        masking = upstream.seams.masking
        self.masker = (
            masking.json_masker(call.tool if message and message.method in CALLS else None)
            if masking
            else None
        )
        self.limit = upstream.settings.max_message_bytes
        self.tap = Tap(upstream.settings.record_head_bytes)

    def transform(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        message = self.message
        method = message.method if message is not None else None
        if (
            message is not None
            and method is not None
            and self.coverage is not None
            and method in LISTS
            and value.get("id") == message.id
            and isinstance(value.get("result"), dict)
        ):
            member = LISTS[method]
            result = dict(value["result"])
            result[member] = self.coverage.keep(method, result.get(member))
            value = {**value, "result": result}
        if self.masker is not None:
            for member in ("result", "params", "error"):
                if member in value:
                    value = {**value, member: self.masker.mask(value[member])}
        return value

    def rewrite(self, data: bytes) -> bytes:
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return self.scrubber.whole(data)
        out = json.dumps(self.transform(value), separators=(",", ":")).encode()
        return self.scrubber.whole(out)

    async def relay(self, send: Send, response: httpx2.Response) -> None:
        status = response.status_code
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        headers = response_headers(response.headers.multi_items(), self.scrubber, drop=_DROP_BACK)
        if self.call.token is not None:
            # The agent gets the session id bound to its delegation (gateway.sessions).
            delegation = self.call.token.delegation_id
            headers = [
                (k, self.upstream.sessions.wrap(v.decode("latin-1"), delegation).encode("latin-1"))
                if k == SESSION_HEADER
                else (k, v)
                for k, v in headers
            ]
        outcome: Any = "forwarded"
        if kind == "text/event-stream":
            await send({"type": "http.response.start", "status": status, "headers": headers})
            events = SseEvents(self.limit)
            try:
                async for chunk in response.aiter_bytes():
                    for event in events.feed(chunk):
                        await self._send_event(send, event)
                for event in events.rest():
                    await self._send_event(send, event)
            except (httpx2.HTTPError, EventTooLarge):
                outcome = "upstream_error"
            except asyncio.CancelledError:
                # The agent closed the stream: the call is over all the same.
                self.call.response = self.tap.recorded()
                self._count()
                await self.call.finish("forwarded", status)
                raise
            await send({"type": "http.response.body", "body": b""})
        else:
            parts: list[bytes] = []
            size = 0
            try:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.limit:
                        raise EventTooLarge
                    parts.append(chunk)
            except (httpx2.HTTPError, EventTooLarge):
                refusal = RpcRefusal(502, UNAVAILABLE, "The upstream's answer was not read.")
                await refuse(
                    self.upstream, send, refusal, self.call, self.message, outcome="upstream_error"
                )
                return
            raw = b"".join(parts)
            body = (
                self.rewrite(raw)
                if raw and kind == "application/json"
                else self.scrubber.whole(raw)
            )
            self.tap.feed(body)
            self.call.response = self.tap.recorded()
            self._count()
            # The agent sees nothing that is not recorded: the record first, then the body.
            if not await self.call.finish("forwarded", status):
                await refuse(
                    self.upstream,
                    send,
                    rpc(UNRECORDED, self.message.id if self.message else None),
                    self.call,
                    self.message,
                )
                return
            await send_simple(send, status, body, headers)
            return
        self.call.response = self.tap.recorded()
        self._count()
        await self.call.finish(outcome, status)

    async def _send_event(self, send: Send, event: Event) -> None:
        out = (
            event.with_data(self.rewrite(event.data))
            if event.data
            else self.scrubber.whole(event.raw())
        )
        await send({"type": "http.response.body", "body": self.tap.feed(out), "more_body": True})

    def _count(self) -> None:
        if self.masker is not None:
            self.call.count_masked(self.masker.counts)
