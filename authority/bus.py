"""An in-process, typed event bus: what happens after a decision, told to who cares.

The decision path (``authority.grants``) publishes a domain event
(``authority.domain_events``) once its outcome is committed; containment, webhooks,
metrics and the revocation feed subscribe to the events they act on, wired in one
place (``authority.app``). So the grants import none of them.

Handlers run in the order they subscribed, one after the other, awaited when they are
coroutines. A handler that fails is logged and the request carries on, except one
subscribed with ``propagate=True``: a handler that enforces a security rule
(containment's count) raises into the request exactly as a direct call would, and
decides for itself which of its failures are only logged.

A leaf module: it knows no event and no service, so ``authority.context`` can hold one.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("authority.bus")

E = TypeVar("E")

#: A subscriber: a function or a coroutine function of the event.
Handler = Callable[[E], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class _Subscription:
    handler: Handler[Any]
    propagate: bool


class EventBus:
    """Subscribers per event type (the exact type: events are final dataclasses)."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Any], list[_Subscription]] = {}

    def subscribe(
        self, event_type: type[E], handler: Handler[E], *, propagate: bool = False
    ) -> None:
        """Run ``handler`` on every published ``event_type``, after the earlier ones.

        ``propagate``: its exceptions reach the publisher (a security rule's handler);
        otherwise they are logged and swallowed (a notice, a counter).
        """
        self._subscribers.setdefault(event_type, []).append(_Subscription(handler, propagate))

    def subscribers(self, event_type: type[Any]) -> int:
        """How many handlers ``event_type`` has (for the wiring's own checks)."""
        return len(self._subscribers.get(event_type, ()))

    async def publish(self, event: object) -> None:
        """Run every handler of the event's type, in order."""
        for subscription in self._subscribers.get(type(event), ()):
            try:
                result = subscription.handler(event)
                # A plain function's None needs no awaitability check.
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:
                if subscription.propagate:
                    raise
                # A side effect never fails the request that caused it.
                log.warning("handler of %s failed: %s", type(event).__name__, type(exc).__name__)
