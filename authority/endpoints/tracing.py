"""The server span of each HTTP request (OpenTelemetry HTTP semantic conventions).

Opened by the HTTP edge (``request_log.RequestLog``) only when traces are exported
(``authority.traces``). Callers are agents, not trusted parts of the operator's system:
a W3C ``traceparent`` they send is a link of the span, never its parent, so no caller
can switch tracing of its own requests off (a parent's sampled flag decides for its
children) or write into another trace. The span is named by the method and the route
template (``POST /oauth2/token``), and carries the status and the request id; never the
path (its ids and query are the caller's), a header or a body. A 5xx is an error of the
span; a refusal is an answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, StatusCode, Tracer, get_current_span
from starlette.types import Scope

from authority.logs import REQUEST_ID


class ServerSpans:
    """One server span around each request, current while it is handled."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    async def around(
        self,
        scope: Scope,
        method: str,
        handle: Callable[[], Awaitable[None]],
        status: Callable[[], int],
    ) -> None:
        """Run ``handle`` in the request's span; ``status`` is the answer's, once known
        (500 while none was sent). ``method`` is already one of ``metrics.METHODS``."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        caller = get_current_span(propagate.extract(carrier)).get_span_context()
        with self.tracer.start_as_current_span(
            method,
            context=Context(),  # a root: this authority's sampler decides
            links=[Link(caller)] if caller.is_valid else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await handle()
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                code = status()
                span.set_attribute("http.response.status_code", code)
                request_id = REQUEST_ID.get()
                if request_id is not None:
                    span.set_attribute("authority.request_id", request_id)
                if code >= 500:
                    span.set_status(StatusCode.ERROR)
