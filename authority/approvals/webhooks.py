"""Owner notification webhooks, signed in the manner of the Standard Webhooks specification.

An owner registers one https URL; the authority POSTs a JSON event to it when an
approval is waiting (``approval.requested``) and when one of the owner's agents has been
quarantined automatically (``agent.quarantined``). Each delivery carries three headers::

    webhook-id: msg_...              the event's id, the same on every retry (dedupe on it)
    webhook-timestamp: 1760000000    Unix seconds of this attempt
    webhook-signature: v1,<base64>   HMAC-SHA-256 over "{id}.{timestamp}.{body}"

under the owner's secret ``whsec_<base64 of 32 random bytes>``, shown once when the URL
is registered. ``authority.sdk.webhooks.verify_webhook`` checks all of it on the
receiving side, and so does any Standard Webhooks library.

Why HMAC with a per-owner secret rather than a JWS under the authority's published key:
a receiver verifies with ten lines of any language's standard library and no key
fetching; one owner's receiver can never be handed a correctly signed event meant for
another owner; and the authority's token-signing keys sign nothing but tokens, so a
webhook body can never be confused with a credential. The cost is a secret the authority
must keep: it is stored sealed (AES-256-GCM under a key derived from the instance
secret, the owner id as associated data), never in clear.

Delivery never slows an exchange: ``notify`` puts the event on a bounded in-memory queue
and returns at once (a full queue drops the event with a log line and a metric); worker
tasks read the owner's URL and secret from SQL and POST, with a timeout per attempt and
retries at exponentially growing, jittered delays. A notice is a convenience, not the
record: ``GET /v1/approvals`` and the ledger hold every approval, so a notice lost to a
restart or a full queue loses nothing that matters.

The parts: ``webhook_signing`` (the secret, the signature, the seal),
``webhook_registration`` (the owner's URL, each change a ledger entry),
``webhook_addresses`` (public addresses only, connected to as checked) and, here, the
queue and its workers. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

from authority.context import Services
from authority.secrets import new_id

from .webhook_addresses import (
    Acceptable,
    AddressRefused,
    PinnedBackend,
    PinnedTransport,
    Resolve,
    allow_any,
    public,
    resolve_system,
)
from .webhook_signing import headers

log = logging.getLogger("authority.webhooks")


APPROVAL_REQUESTED: Final = "approval.requested"
AGENT_QUARANTINED: Final = "agent.quarantined"


# --- delivery ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Event:
    owner_id: str
    msg_id: str
    body: bytes


def event(owner_id: str, kind: str, data: dict[str, Any], now: int) -> Event:
    """A Standard Webhooks payload: ``{"type", "timestamp", "data"}``."""
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat().replace("+00:00", "Z")
    body = orjson.dumps({"type": kind, "timestamp": stamp, "data": data})
    return Event(owner_id, new_id("msg"), body)


class Dispatcher:
    """One instance's delivery queue and its workers."""

    def __init__(
        self,
        services: Services,
        *,
        resolve: Resolve = resolve_system,
        acceptable: Acceptable | None = None,
    ) -> None:
        self._services = services
        settings = services.settings
        if acceptable is None:
            acceptable = allow_any if settings.webhook_allow_private_addresses else public
        self._backend = PinnedBackend(resolve, acceptable)
        self._queue: asyncio.Queue[tuple[Event, int]] = asyncio.Queue(settings.webhook_queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    def _start(self) -> None:
        if self._workers or self._closed:
            return
        settings = self._services.settings
        self._client = httpx.AsyncClient(
            transport=PinnedTransport(self._backend),
            timeout=settings.webhook_timeout,
            follow_redirects=False,
            trust_env=False,
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"webhook-worker-{n}")
            for n in range(settings.webhook_workers)
        ]

    def notify(self, item: Event) -> bool:
        """Queue ``item`` for delivery; never waits. False when it was dropped."""
        if self._closed:
            return False
        self._start()
        return self._put(item, 1)

    def queue(self, owner_id: str, kind: str, data: dict[str, Any]) -> bool:
        """Queue one event of ``kind`` for the owner's webhook (``WebhookQueue``)."""
        return self.notify(event(owner_id, kind, data, self._services.now()))

    def _put(self, item: Event, attempt: int) -> bool:
        try:
            self._queue.put_nowait((item, attempt))
        except asyncio.QueueFull:
            log.warning("webhook queue full: event %s for %s dropped", item.msg_id, item.owner_id)
            self._services.metrics.webhooks.labels("dropped").inc()
            return False
        return True

    async def close(self) -> None:
        self._closed = True
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self) -> None:
        while True:
            item, attempt = await self._queue.get()
            try:
                delivered = await self._deliver(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook %s: %s", item.msg_id, type(exc).__name__)
                delivered = False
            finally:
                self._queue.task_done()
            if delivered is None or delivered:
                continue
            self._retry(item, attempt)

    def _retry(self, item: Event, attempt: int) -> None:
        settings = self._services.settings
        counter = self._services.metrics.webhooks
        if attempt >= settings.webhook_max_attempts or self._closed:
            counter.labels("failed").inc()
            log.warning(
                "webhook %s for %s given up after %d attempts", item.msg_id, item.owner_id, attempt
            )
            return
        counter.labels("retried").inc()
        delay = min(settings.webhook_retry_max, settings.webhook_retry_base * 2 ** (attempt - 1))
        delay *= 0.5 + random.random() / 2  # noqa: S311 (jitter, not a secret)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def again() -> None:
            self._retries.discard(handle)
            if not self._closed:
                self._put(item, attempt + 1)

        handle = loop.call_later(delay, again)
        self._retries.add(handle)

    async def _deliver(self, item: Event) -> bool | None:
        """True: delivered; False: retry; None: nothing to deliver to (no URL any more)."""
        services = self._services
        row = await services.webhook_store.target(item.owner_id)
        if row is None or row.url is None or row.sealed_secret is None:
            return None
        secret = services.webhook_sealer.open(row.sealed_secret, owner_id=item.owner_id)
        if secret is None:
            log.warning("webhook secret of %s does not open; not delivered", item.owner_id)
            return None
        if self._client is None:  # closed meanwhile
            return None
        sent = headers(secret, item.msg_id, services.now(), item.body)
        try:
            response = await self._client.post(row.url, content=item.body, headers=sent)
        except AddressRefused as exc:  # raised by PinnedBackend before any connection
            log.warning("webhook of %s not delivered: %s", item.owner_id, exc)
            services.metrics.webhooks.labels("refused").inc()
            return None
        except httpx.HTTPError as exc:
            log.info("webhook %s to %s: %s", item.msg_id, item.owner_id, type(exc).__name__)
            return False
        if 200 <= response.status_code < 300:
            services.metrics.webhooks.labels("delivered").inc()
            return True
        log.info("webhook %s to %s: HTTP %d", item.msg_id, item.owner_id, response.status_code)
        return False


def notify(services: Services, owner_id: str, kind: str, data: dict[str, Any]) -> bool:
    """Queue one event for the owner's webhook; returns at once, never raises."""
    try:
        if services.webhooks is None:
            raise RuntimeError("no webhook queue")
        return services.webhooks.queue(owner_id, kind, data)
    except Exception as exc:  # a notice must never fail the request that caused it
        log.warning("webhook event for %s not queued: %s", owner_id, type(exc).__name__)
        return False
