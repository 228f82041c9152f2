"""RFC 7662 introspection for an enforcement point: one request to the authority for the
concurrent checks of the same token, over persistent connections.

Coalescing. Checks of one token that arrive while its request has not been sent yet (it
waits for a connection, or for the next turn of the event loop) share that request and
its answer. Once the request is written, a new check of the same token starts a request
of its own: every answer was computed by the authority after the check it answers began,
so a revocation committed before a request arrives is seen by that request, exactly as
without coalescing. Nothing is kept once the answer is handed out (no cache).

Single-use tokens. The authority's first active answer for a single-use token consumes
it (``authority.grants.introspection``), so of several checks sharing that request
exactly one may pass, as exactly one would if each had asked: the first waiter gets the
active answer and the others ``inactive``. The authority says which tokens may be used
again (``single_use: false`` in the active answer); an active answer without that member
(an older authority) is given to one waiter only, and each other asks again.

Fail closed. No answer, a timeout, a 5xx, a malformed answer: ``unavailable`` for every
waiter of that request; the enforcement point refuses all of them the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import httpx

from authority import protocol
from authority.sdk.connections import AuthorityConnections, AuthorityUnreachable

__all__ = ["Answer", "Introspector", "Liveness"]

log = logging.getLogger("authority.sdk.introspection")

Liveness = Literal["inactive", "unavailable"]
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")
Answer = Mapping[str, Any] | Liveness


@dataclass(slots=True)
class _Request:
    """One introspection request and the checks waiting for its answer."""

    answer: asyncio.Future[Answer]
    #: The active answer of a token that may not be used again went to a waiter already.
    spent: bool = False


class Introspector:
    """Asks the authority whether tokens are active, for one authenticated resource server.

    ``http`` discovers the endpoint (RFC 8414 metadata, once, unless ``endpoint`` names
    it) and, unless ``connections`` is given, carries the introspection requests too; with
    ``connections`` (on the same origin as the endpoint) they go over those persistent
    connections instead.
    """

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        auth: httpx.Auth | None,
        *,
        authorization: str | None = None,
        connections: AuthorityConnections | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.http = http
        self.auth = auth
        self.connections = connections
        self._authorization = authorization
        self._endpoint: str | None = None
        if endpoint is not None:
            self._use(endpoint)
        self._discovery = asyncio.Lock()
        self._open: dict[str, _Request] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def introspect(self, token: str) -> Answer:
        """The RFC 7662 answer when active; ``inactive`` or ``unavailable`` otherwise."""
        if self.auth is None:
            return "inactive"  # no way to ask: fail closed
        while True:
            request = self._open.get(token)
            if request is None:
                request = _Request(asyncio.get_running_loop().create_future())
                self._open[token] = request
                task = asyncio.create_task(self._ask(token, request))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            # Shielded: a waiter that goes away does not take the others' answer with it.
            answer = await asyncio.shield(request.answer)
            if isinstance(answer, str):
                return answer
            reusable = answer.get("single_use") is False
            if reusable or not request.spent:
                request.spent = True
                return answer
            if answer.get("single_use") is True:
                return "inactive"  # spent by the waiter before: as the authority would say
            # Not known to be reusable: ask again, with whoever else is in the same case.

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        # A task cancelled before it ran never answers its waiters: answer them all here.
        for request in self._open.values():
            if not request.answer.done():
                request.answer.set_result("unavailable")
        self._open.clear()
        if self.connections is not None:
            await self.connections.aclose()

    # --- one request ----------------------------------------------------------------
    async def _ask(self, token: str, request: _Request) -> None:
        try:
            answer = await self._request(token, request)
        except asyncio.CancelledError:
            answer = "unavailable"
        except Exception:  # fail closed, whatever went wrong
            log.exception("introspection failed: the call is refused")
            answer = "unavailable"
        finally:
            self._close(token, request)
        if not request.answer.done():
            request.answer.set_result(answer)

    def _close(self, token: str, request: _Request) -> None:
        """No check joins ``request`` from now on."""
        if self._open.get(token) is request:
            del self._open[token]

    async def _request(self, token: str, request: _Request) -> Answer:
        endpoint = await self._introspection_endpoint()
        if endpoint is None:
            return "unavailable"
        # A compact JWS is all unreserved characters: form-encoding leaves it as it is.
        safe = _UNRESERVED.fullmatch(token) is not None
        form = b"token=" + token.encode("ascii") if safe else urlencode({"token": token}).encode()
        if self.connections is not None:
            status, body = await self._over_connections(endpoint, form, token, request)
        else:
            status, body = await self._over_http(endpoint, form, token, request)
        if status >= 500:
            return "unavailable"
        try:
            answer = json.loads(body)
        except ValueError:
            return "unavailable"
        if status == 200 and isinstance(answer, dict) and answer.get("active"):
            return answer if answer["active"] is True else "inactive"
        return "inactive"

    async def _over_connections(
        self, endpoint: str, form: bytes, token: str, request: _Request
    ) -> tuple[int, bytes]:
        assert self.connections is not None
        parts = urlsplit(endpoint)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = (
            (b"Authorization", (self._authorization or "").encode("latin-1")),
            (b"Content-Type", b"application/x-www-form-urlencoded"),
            (b"Accept", b"application/json"),
        )

        def sending() -> None:
            # Joining ends as the request is written: checks that waited for a connection
            # until now share it, and none that begins later does.
            self._close(token, request)

        await asyncio.sleep(0)  # the checks of this event-loop turn join first
        try:
            answer = await self.connections.post(target, headers, form, on_send=sending)
        except AuthorityUnreachable as exc:
            log.warning("introspection unreachable (%s): the call is refused", exc)
            return 503, b""
        return answer.status, answer.body

    async def _over_http(
        self, endpoint: str, form: bytes, token: str, request: _Request
    ) -> tuple[int, bytes]:
        await asyncio.sleep(0)  # the checks of this event-loop turn join first
        self._close(token, request)
        try:
            response = await self.http.post(
                endpoint,
                content=form,
                headers={"content-type": "application/x-www-form-urlencoded"},
                auth=self.auth or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError:
            return 503, b""
        return response.status_code, response.content

    async def _introspection_endpoint(self) -> str | None:
        if self._endpoint is not None:
            return self._endpoint
        async with self._discovery:
            if self._endpoint is None:
                url = self.issuer + protocol.OAUTH_AUTHORIZATION_SERVER_PATH
                try:
                    metadata = (await self.http.get(url)).json()
                    endpoint = str(metadata["introspection_endpoint"])
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    return None  # the authority cannot be asked: fail closed
                self._use(endpoint)
        return self._endpoint

    def _use(self, endpoint: str) -> None:
        if self.connections is not None and not self.connections.origin_of(endpoint):
            self.connections = None  # elsewhere: through the general client
        self._endpoint = endpoint
