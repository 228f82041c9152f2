"""One log line per HTTP request, and its request id (``X-Request-Id``) in and out.

A caller's ``X-Request-Id`` is kept when it is short and made of safe characters (so it
can neither forge a log line nor fill one); otherwise, or when there is none, the
request gets a fresh one. Either way it is echoed on the response and set for every
record logged while the request runs (``authority.logs.REQUEST_ID``), so the decision's
line carries the same id as the request's.

The line names the route template (``/v1/agents/{agent_id}``), never the path, whose ids
and query strings are the caller's; nor any header or body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authority.errors import ServerError
from authority.logs import REQUEST_ID
from authority.metrics import METHODS, OTHER

from .http import error_response

log = logging.getLogger("authority.access")

HEADER: Final = b"x-request-id"
#: Long enough for a UUID, a W3C trace id or a load balancer's own; no space, quote,
#: control character or anything else a log reader could be fooled by.
_ACCEPTED: Final = re.compile(rb"[A-Za-z0-9._:=+/-]{1,128}")


def request_id(scope: Scope) -> str:
    """The caller's request id if it is acceptable, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            if isinstance(value, bytes) and _ACCEPTED.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class RequestLog:
    """Pure ASGI (no buffering): sets the request id, logs the request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        token = REQUEST_ID.set(rid)
        status = 500
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = int(message["status"]), True
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                headers.append((HEADER, rid.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Unforeseen: logged here with its traceback (never the request), answered in
            # the RFC shape with the request id, so the caller's report finds this line.
            log.exception("unhandled error")
            if not answered:
                await error_response(ServerError())(scope, receive, send_with_id)
            else:
                raise
        finally:
            # The router writes the matched route into this very scope.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": method if method in METHODS else OTHER,
                        "route": route,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
            REQUEST_ID.reset(token)
