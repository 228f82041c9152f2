"""The revocation feed endpoint: Server-Sent Events for authenticated resource servers.

``GET`` with HTTP Basic (``client_secret_basic``), or ``POST`` with a form body carrying
``client_secret_post`` or a ``private_key_jwt`` client assertion (a GET has no body to
carry them). ``Last-Event-ID`` resumes after the event with that id; without it the
stream replays every event still live. Either way it then sends ``ready``, and it carries
only the events that concern the authenticated server. The event format, the catch-up
and the no-gap, no-duplicate guarantee are described in ``authority.revocations.feed``.

The feed only ever says "revoked", so it does not need hot state except to reject a
replayed client assertion: it keeps running during a Redis outage (it reads SQL), which
is when resource servers most need it.

The response is sse-starlette's ``EventSourceResponse``: it watches for the client's
disconnect while the stream waits (so a follower that went away frees its slot at once)
and answers HEAD without opening a stream. Its own shutdown handling is turned off
(``authority.shutdown``): it ends streams by cancellation, with no last word; the stream
ends itself instead, with the ``retry:`` hint, when the instance drains. Its pings are
off: the stream sends the heartbeats its settings ask for.
"""

from __future__ import annotations

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.context import Services
from authority.errors import InvalidRequest, TooManyRequests
from authority.grants.client_auth import authenticate_server, registered_server, require_fresh
from authority.revocations import events, feed

from . import forms, limits, paths
from .credentials import client_credentials
from .guard import endpoint
from .http import Form, read_form

MAX_EVENT_ID_DIGITS = 18
STREAM_HEADERS = {
    "Cache-Control": "no-store",
    # Reverse proxies (nginx) would otherwise hold events back in their buffers.
    "X-Accel-Buffering": "no",
}


def _last_event_id(request: Request) -> int | None:
    values = request.headers.getlist("last-event-id")
    if not values:
        return None
    value = values[0].strip()
    if len(values) > 1 or not value.isascii() or not value.isdigit():
        raise InvalidRequest("The Last-Event-ID header must be an event id of this feed.")
    if len(value) > MAX_EVENT_ID_DIGITS:
        raise InvalidRequest("The Last-Event-ID header must be an event id of this feed.")
    return int(value)


@endpoint
async def revocation_feed(request: Request) -> Response:
    services: Services = request.app.state.services
    if request.method == "POST":
        form = await read_form(request, services.settings.max_body_bytes, schema=(forms.FeedForm,))
    else:
        if request.url.query:
            raise InvalidRequest("The feed takes no query parameters.")
        form = Form([], frozenset())
    credentials = client_credentials(request, form)
    last_event_id = _last_event_id(request)
    now = services.now()
    client = authenticate_server(
        services,
        credentials,
        await registered_server(services, credentials.client_id),
        endpoint_url=services.settings.issuer + paths.REVOCATION_FEED,
        now=now,
    )
    await require_fresh(services, client)
    # Streams are long-lived by design, so one resource server may hold only so many
    # (the per-address cap is ClientLimits'); released when the request ends, however.
    release = services.open_items.server_streams.acquire(
        client.id, services.settings.revocation_feed_max_streams_per_server
    )
    if release is None:
        raise TooManyRequests("Too many open feed streams for this client.")
    request.scope.setdefault(limits.ON_END, []).append(release)
    hub = await feed.hub(services)
    settings = services.settings
    # Read the first page here, so that a database failure is a 503, not a dead stream.
    ready_at = await services.event_reader.last_id()
    after = 0 if last_event_id is None else last_event_id
    backlog = await events.read_after(
        services.event_reader, after, feed.PAGE, settings=settings, live_at=now
    )
    if last_event_id is None:
        # A subscriber without a position starts with every event still live (see
        # events.is_live), not at the instance's tail: a resource server that (re)starts
        # must hear of what was revoked before it connected. The stream's first id is
        # just before the first of them, so that a cut during the replay resumes it.
        cursor = backlog[0].id - 1 if backlog else ready_at
    else:
        cursor = last_event_id
    return EventSourceResponse(
        feed.stream(
            services, hub, server_id=client.id, cursor=cursor, ready_at=ready_at, backlog=backlog
        ),
        headers=STREAM_HEADERS,
        ping=0,
    )


routes = [Route(paths.REVOCATION_FEED, revocation_feed, methods=["GET", "POST"])]
