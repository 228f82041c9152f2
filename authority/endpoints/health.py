"""Liveness (``/healthz``) and readiness (``/readyz``).

Ready means this instance can do its work now: the database and the hot state answer,
it holds an active, published signing key for tokens and for the ledger, its ledger
sequencer is running and its latest round did not fail, and it is not stopping (a
SIGTERM has begun its drain, ``authority.shutdown``). Anything else is 503, so that a
load balancer sends the requests to another instance.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.context import Services
from authority.storage.readiness import database_answers
from authority.tokens.keyring import KeyringNotLoaded
from authority.tokens.keys import PURPOSES

from .http import json_response

log = logging.getLogger("authority.health")

OK = "ok"
UNAVAILABLE = "unavailable"
#: Seconds each dependency has to answer: well inside a probe's own timeout.
PROBE_TIMEOUT = 2.0


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


def _signing_keys(services: Services) -> str:
    """An active key of each purpose, and published: what it signs can be verified."""
    keyring = services.keyring
    for purpose in PURPOSES:
        try:
            kid = keyring.active_kid(purpose)
        except KeyringNotLoaded:
            return UNAVAILABLE
        if keyring.public_key(kid, purpose) is None:
            return UNAVAILABLE
    return OK


def _sequencer(services: Services) -> str:
    sequencer = services.sequencer
    return OK if sequencer is not None and sequencer.usable else UNAVAILABLE


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}

    async def database() -> None:
        await database_answers(services.engine)

    for name, probe in (("database", database), ("hot_state", services.hot.ping)):
        try:
            await asyncio.wait_for(probe(), timeout=PROBE_TIMEOUT)
            checks[name] = OK
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            checks[name] = UNAVAILABLE
    checks["signing_keys"] = _signing_keys(services)
    checks["sequencer"] = _sequencer(services)
    draining = services.drain.draining
    checks["shutdown"] = "draining" if draining else "running"
    ready = not draining and all(v == OK for k, v in checks.items() if k != "shutdown")
    status = "ready" if ready else ("draining" if draining else UNAVAILABLE)
    return json_response(
        {"status": status, "checks": checks},
        200 if ready else 503,
        {"Cache-Control": "no-store"},
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
