"""The wrapper every endpoint runs in: RFC errors rendered, storage failures fail closed.

``DirectRoute`` is a route the HTTP edge (``request_log.RequestLog``) may hand a request
to itself, without Starlette's router and exception layers: the busiest endpoints
(introspection) pay for neither. Only a guarded endpoint on a fixed path qualifies: it
raises nothing those layers would have handled (every ``Exception`` is an answer here),
and only a (method, path) that the router would have sent to that same route is taken
(``direct_routes``), so the edge answers exactly as the router would have.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route

from authority.errors import AuthorityError, TemporarilyUnavailable
from authority.storage.failures import HotStateUnavailable, database_unavailable

from .http import error_response, render_unexpected

log = logging.getLogger("authority.http")

Handler = Callable[[Request], Awaitable[Response]]

#: Every handler ``endpoint`` made: none lets an ``Exception`` out.
_GUARDED: Final[set[Handler]] = set()


def endpoint(handler: Handler) -> Handler:
    """Render ``AuthorityError`` per RFC 6749 §5.2; turn unreachable storage into 503.

    A storage failure must never look like success or like the client's fault: the
    client is told to retry, and nothing is issued or reported active.
    """

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except AuthorityError as exc:
            return error_response(exc)
        except HotStateUnavailable as exc:
            log.warning("hot state unavailable: %s", exc)
            return error_response(TemporarilyUnavailable())
        except Exception as exc:
            if database_unavailable(exc):
                log.warning("database unavailable: %s", type(exc).__name__)
                return error_response(TemporarilyUnavailable())
            return render_unexpected(exc)

    _GUARDED.add(wrapped)
    return wrapped


class DirectRoute(Route):
    """A route the HTTP edge may call directly (see the module doc): a fixed path, an
    ``endpoint``-guarded handler, no route middleware."""

    def __init__(self, path: str, handler: Handler, *, methods: Collection[str]) -> None:
        if handler not in _GUARDED:
            raise TypeError("a direct route's handler must be wrapped by guard.endpoint")
        super().__init__(path, handler, methods=list(methods))
        if self.param_convertors:
            raise ValueError("a direct route's path has no parameters")
        self.handler = handler


def direct_routes(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], DirectRoute]:
    """(method, path) -> the ``DirectRoute`` the router would choose for it: the first
    route in order that fully matches. Only plain routes and mounts are probed (they
    match on the path and method alone); after any other kind of route, whose matching
    may depend on more of the request, no direct route is taken."""
    table: dict[tuple[str, str], DirectRoute] = {}
    for position, route in enumerate(routes):
        if not isinstance(route, DirectRoute):
            continue
        earlier = routes[:position]
        if not all(type(r) in (Route, DirectRoute, Mount) for r in earlier):
            break
        for method in route.methods or ():
            probe = {"type": "http", "path": route.path, "root_path": "", "method": method}
            if not any(r.matches(probe)[0] is Match.FULL for r in earlier):
                table[(method, route.path)] = route
    return table
