"""``GET /metrics``: the instance's Prometheus metrics (text exposition format 0.0.4).

Protected, because request rates per route and decisions per agent say a lot about who
does what: the scraper sends ``Authorization: Bearer <metrics_token>`` when that setting
is set, otherwise an admin or auditor API key (an auditor key is the one to give a
scraper: it can read, never change). Serving it on a private interface only is a good
idea as well; nothing in it is a token or a secret (see ``authority.metrics``).

``RequestSeries`` counts the HTTP requests themselves; it lives here, at the HTTP
edge, so that the metrics the domain records into need no Starlette.
"""

from __future__ import annotations

import hmac
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.context import Services
from authority.errors import InvalidRequest, InvalidToken, NotFound
from authority.management.auth import REALM, SEE_ALL, authenticate, require_role
from authority.metrics import Metrics

from .guard import endpoint
from .http import NO_STORE

PATH = "/metrics"


def _bearer_matches(request: Request, expected: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


@endpoint
async def serve_metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    if not settings.metrics_enabled:
        raise NotFound("No such endpoint.")
    if request.url.query:
        raise InvalidRequest("The request has an unknown query parameter.")
    if settings.metrics_token is not None:
        if not _bearer_matches(request, settings.metrics_token):
            raise InvalidToken(headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
    else:
        require_role(await authenticate(request), *SEE_ALL)
    body = services.metrics.exposition(services.clock.now())
    return Response(body, 200, headers=NO_STORE, media_type=CONTENT_TYPE_LATEST)


routes = [Route(PATH, serve_metrics, methods=["GET"])]


class RequestSeries:
    """The HTTP requests' counter and latency histogram, by route template: observed by
    the HTTP edge (``request_log.RequestLog``) once each request is answered."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """``method`` is one of ``METHODS`` or ``OTHER``; ``route`` a template or
        ``unmatched``."""
        requests, latency = self._children(method, route, status)
        requests.inc()
        latency.observe(seconds)

    def _children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The two series of a request, looked up once: ``labels()`` validates and locks
        on every call, a measurable share of a fast request. Keys are bounded: methods
        and route templates are fixed sets, statuses a small one."""
        key = (method, route, status)
        children = self._series.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
            self._series[key] = children
        return children
