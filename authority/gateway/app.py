"""The gateway as one ASGI application: every upstream at ``/u/<name>``, its RFC 9728
metadata at ``/.well-known/oauth-protected-resource/u/<name>``, ``/healthz``.

A path under no upstream is 404; nothing is ever forwarded for it. The lifespan starts
each upstream's revocation feed and closes the HTTP clients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol

import httpx
import httpx2

from authority.gateway.calls import Upstream
from authority.gateway.config import MOUNT
from authority.gateway.streams import Receive, Scope, Send, send_simple
from authority.sdk.resource_metadata import WELL_KNOWN

_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_NOT_FOUND = json.dumps({"error": "not_found", "error_description": "No such upstream."}).encode()


class Handler(Protocol):
    upstream: Upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None: ...


class Gateway:
    def __init__(
        self,
        handlers: Sequence[Handler],
        *,
        clients: Sequence[httpx.AsyncClient | httpx2.AsyncClient] = (),
        recorder: object = None,
    ) -> None:
        self.handlers: Mapping[str, Handler] = {h.upstream.name: h for h in handlers}
        self._clients = list(clients)
        #: Started and closed with the gateway when it has ``start``/``close`` (the
        #: AuthorityRecorder's queue and workers).
        self.recorder = recorder

    def upstream(self, name: str) -> Upstream:
        return self.handlers[name].upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            # WebSockets are no upstream transport here: refuse before any handshake.
            await send({"type": "websocket.close", "code": 1008})
            return
        path = str(scope["path"])
        if path.startswith(WELL_KNOWN + MOUNT):
            handler = self.handlers.get(path[len(WELL_KNOWN + MOUNT) :])
            if handler is not None:
                await handler.upstream.metadata.send(scope, send)
                return
        elif path.startswith(MOUNT):
            name, _, rest = path[len(MOUNT) :].partition("/")
            handler = self.handlers.get(name)
            if handler is not None:
                await handler(scope, receive, send, "/" + rest if rest else "")
                return
        elif path == "/healthz":
            await self._health(send)
            return
        await send_simple(send, 404, _NOT_FOUND, _JSON)

    async def _health(self, send: Send) -> None:
        feeds = {
            name: h.upstream.gate.feed is not None and h.upstream.gate.feed.healthy
            for name, h in self.handlers.items()
        }
        recording = all(not h.upstream.recording.down for h in self.handlers.values())
        body = json.dumps({"feeds": feeds, "recording": recording}).encode()
        await send_simple(send, 200, body, _JSON)

    async def start(self) -> None:
        for handler in self.handlers.values():
            handler.upstream.gate.start()
        start = getattr(self.recorder, "start", None)
        if callable(start):
            start()

    async def stop(self) -> None:
        close = getattr(self.recorder, "close", None)
        if callable(close):
            await close()  # the backlog gets its drain time before the clients go
        for handler in self.handlers.values():
            await handler.upstream.gate.stop()
        for client in self._clients:
            await client.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
