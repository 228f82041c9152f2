"""Draining on SIGTERM: readiness says 503 and feed streams end, before uvicorn waits.

uvicorn answers SIGTERM by closing its listeners and waiting for every open connection
to finish, for at most ``timeout_graceful_shutdown`` seconds (``shutdown_grace``), then
cancelling what is left; only after that does the application hear of it (the lifespan's
shutdown). A revocation feed stream never finishes by itself, so without more every
stop would last the whole grace and end the streams by cancellation, with no word to
their followers. ``chain_signals`` puts ``Drain.begin`` in front of uvicorn's own
handler: streams end at once with a ``retry:`` hint (``authority.revocations.feed``),
so followers reconnect, through the load balancer, to another instance; ``/readyz``
answers 503 to whoever still asks this one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from sse_starlette.sse import AppStatus

log = logging.getLogger("authority.shutdown")

#: The signals uvicorn stops on.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """Whether this instance is stopping, and who to tell when it starts to."""

    def __init__(self) -> None:
        self.draining = False
        self._callbacks: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the callbacks run on (the instance's, from its start-up)."""
        self._loop = loop

    def on_begin(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the instance's loop when draining begins."""
        self._callbacks.append(callback)

    def begin(self) -> None:
        """Start draining; safe from a signal handler (the callbacks run on the loop)."""
        if self.draining:
            return
        self.draining = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._run_callbacks)
        else:
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        for callback in self._callbacks:
            try:
                callback()
            except Exception as exc:
                log.warning("drain callback failed: %s", type(exc).__name__)


def chain_signals(drain: Drain) -> bool:
    """Begin ``drain`` on SIGTERM and SIGINT, then hand the signal to the server's handler.

    Called from the application's lifespan start-up, by which time uvicorn has installed
    its handlers (``Server.capture_signals``; it may import the application before or
    after, depending on the number of workers); it restores its own originals when it
    stops. Nothing is installed when no server's handler is there (an application run
    by a test, or outside the main thread): False then.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if not callable(signal.getsignal(signal.SIGTERM)):
        return False  # SIG_DFL (Python's own default): no server is serving here
    # sse-starlette's own drain would cancel every stream (a cut, not an end with the
    # retry hint) half a second after the signal; it notices the signal only where it
    # was imported before uvicorn installed its handlers, which depends on the imports
    # of the command. The drain here is the one way streams end on a stop.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    installed = False
    for sig in SIGNALS:
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(
            signum: int, frame: FrameType | None, previous: Callable[..., Any] = previous
        ) -> None:
            drain.begin()
            previous(signum, frame)

        signal.signal(sig, handler)
        installed = True
    return installed
