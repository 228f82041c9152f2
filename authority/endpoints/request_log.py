"""The HTTP edge: one pure-ASGI middleware around every request.

In order, as separate middlewares did before it (one layer costs less per request than
four):

* the request id (``X-Request-Id``) in and out. A caller's is kept when it is short and
  made of safe characters (so it can neither forge a log line nor fill one); otherwise,
  or when there is none, the request gets a fresh one. Either way it is echoed on the
  response and set for every record logged while the request runs
  (``authority.logs.REQUEST_ID``), so the decision's line carries the same id as the
  request's;
* the server span (``endpoints.tracing``), only when traces are exported;
* the request metrics (``endpoints.metrics.RequestSeries``), and ``REQUEST_STARTED``;
* the per-client limits (``endpoints.limits``);
* then the route: a ``guard.DirectRoute`` directly, any other through Starlette's
  router (``guard.direct_routes`` says which is which, exactly as the router would).

An unforeseen exception is logged with its traceback (never the request) and answered
in the RFC shape with the request id. The log line, once the request is answered, names
the route template (``/v1/agents/{agent_id}``), never the path, whose ids and query
strings are the caller's; nor any header or body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authority.errors import ServerError
from authority.logs import REQUEST_ID
from authority.metrics import METHODS, OTHER, REQUEST_STARTED

from . import limits
from .guard import direct_routes
from .http import error_response
from .metrics import RequestSeries

if TYPE_CHECKING:
    from authority.context import Services

    from .tracing import ServerSpans

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


class _Answer:
    """What the request has been answered so far."""

    __slots__ = ("answered", "status")

    def __init__(self) -> None:
        self.status = 500
        self.answered = False

    def get_status(self) -> int:
        return self.status


class RequestLog:
    """Pure ASGI (no buffering). With no ``services``, the request id and the log line
    only; with them, the metrics, the client limits, the direct routes among ``routes``
    and, when traces are exported, the server span."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        services: Services | None = None,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.series = RequestSeries(services.metrics) if services is not None else None
        self.limits = limits.ClientLimits(services) if services is not None else None
        self.spans: ServerSpans | None = None
        if services is not None and services.tracing.tracer is not None:
            # Imported here: OpenTelemetry is needed only by an instance exporting traces.
            from .tracing import ServerSpans

            self.spans = ServerSpans(services.tracing.tracer)
        self.direct = direct_routes(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        rid_header = (HEADER, rid.encode("ascii"))
        token = REQUEST_ID.set(rid)
        started_token = REQUEST_STARTED.set(started)
        answer = _Answer()
        method = scope.get("method", "")
        method = method if method in METHODS else OTHER

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status, answer.answered = int(message["status"]), True
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                headers.append(rid_header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                if self.spans is None:
                    await self._limited(scope, receive, send_with_id)
                else:
                    await self.spans.around(
                        scope,
                        method,
                        lambda: self._limited(scope, receive, send_with_id),
                        answer.get_status,
                    )
            finally:
                REQUEST_STARTED.reset(started_token)
                if self.series is not None:
                    # Counted as answered so far: an exception not yet answered is a 500.
                    self.series.observe(
                        method, _route(scope), answer.status, time.perf_counter() - started
                    )
        except Exception:
            # Unforeseen: logged here with its traceback (never the request), answered in
            # the RFC shape with the request id, so the caller's report finds this line.
            log.exception("unhandled error")
            if not answer.answered:
                await error_response(ServerError())(scope, receive, send_with_id)
            else:
                raise
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": _route(scope),
                        "status": answer.status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
            REQUEST_ID.reset(token)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limits is None:
            await self._dispatch(scope, receive, send)
            return
        try:
            admitted = self.limits.admit(scope, receive)
            if admitted is None:
                await limits.too_many(scope, receive, send)
            else:
                await self._dispatch(scope, admitted, send)
        finally:
            limits.ended(scope)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct.get((scope["method"], scope["path"])) if self.direct else None
        if direct is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        # What the router would do for this route (``guard.direct_routes``), minus the
        # exception layers a guarded handler never needs.
        scope["route"] = direct
        scope["endpoint"] = direct.endpoint
        scope["path_params"] = {}
        scope.setdefault("router", getattr(scope.get("app"), "router", None))
        response = await direct.handler(Request(scope, receive, send))
        await response(scope, receive, send)


def _route(scope: Scope) -> str:
    # The router (or ``_dispatch``) writes the matched route into this very scope.
    return getattr(scope.get("route"), "path", None) or "unmatched"
