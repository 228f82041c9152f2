"""Per-client bounds on what a slow or hoarding client can hold open.

A request whose body trickles in, and a revocation feed stream, each hold a connection
and a task for as long as the client likes. Without a bound, one client address could
hold hundreds of them. Here, per instance:

* every request gets a deadline, ``body_read_timeout`` seconds after its arrival, by
  which ``read_body`` must have its whole body (``BODY_DEADLINE`` in the scope);
* a client address may have at most ``max_body_uploads_per_client`` requests whose body
  is still arriving; past that a new one is refused with 429 before any of it is read;
* a client address may hold at most ``revocation_feed_max_streams_per_client`` feed
  streams; the feed endpoint itself caps streams per resource server
  (``revocation_feed_max_streams_per_server``, via ``FeedStreams``), once it knows which.

The counts are in-process: with N instances a client can hold N times as many. A
reverse proxy in front that hides client addresses makes them one client; configure it
to pass the address (uvicorn ``--proxy-headers``), or raise the caps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from starlette.types import Message, Receive, Scope, Send

from authority.context import Services
from authority.errors import TooManyRequests
from authority.settings import Settings

from . import paths
from .http import BODY_DEADLINE, error_response

log = logging.getLogger("authority.http")

#: Scope key: callbacks run when the request ends, however it ends.
ON_END: Final = "authority.on_end"


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


class ClientLimits:
    """The bounds above, applied by the HTTP edge (``request_log.RequestLog``) to every
    request before it is routed: ``admit``, then ``ended`` however the request ends."""

    def __init__(self, services: Services) -> None:
        self.settings: Settings = services.settings
        self.uploads = services.open_items.uploads
        self.feed_streams = services.open_items.client_streams

    def admit(self, scope: Scope, receive: Receive) -> Receive | None:
        """Set the request's deadline and its ``ON_END`` callbacks; the ``receive`` to
        read its body with, or None when it is refused (``too_many`` answers it)."""
        settings = self.settings
        client = _client(scope)
        on_end: list[Callable[[], None]] = []
        scope[ON_END] = on_end
        scope[BODY_DEADLINE] = asyncio.get_running_loop().time() + settings.body_read_timeout
        if scope["path"] == paths.REVOCATION_FEED:
            release = self.feed_streams.acquire(
                client, settings.revocation_feed_max_streams_per_client
            )
            if release is None:
                log.info("feed stream refused: too many from one client address")
                return None
            on_end.append(release)
        if _has_body(scope):
            release = self.uploads.acquire(client, settings.max_body_uploads_per_client)
            if release is None:
                log.info("request refused: too many bodies arriving from one address")
                return None
            on_end.append(release)
            return _until_body_complete(receive, release)
        return receive


def ended(scope: Scope) -> None:
    """Run the request's ``ON_END`` callbacks (slots it held), once it has ended."""
    for callback in scope.get(ON_END, ()):
        callback()


def _until_body_complete(receive: Receive, release: Callable[[], None]) -> Receive:
    """``receive``, releasing the upload slot once the last body chunk (or the end) came."""

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            release()
        return message

    return wrapped


async def too_many(scope: Scope, receive: Receive, send: Send) -> None:
    """429 to a request ``admit`` refused."""
    # The body is never read: the connection is closed after the answer.
    response = error_response(TooManyRequests())
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
