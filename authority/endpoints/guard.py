"""The wrapper every endpoint runs in: RFC errors rendered, storage failures fail closed."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from authority.errors import AuthorityError, TemporarilyUnavailable
from authority.storage.failures import HotStateUnavailable, database_unavailable

from .http import error_response, render_unexpected

log = logging.getLogger("authority.http")

Handler = Callable[[Request], Awaitable[Response]]


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

    return wrapped
