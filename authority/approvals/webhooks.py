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

Registering, replacing and removing the URL is a ``registry_changed`` ledger entry in
the same transaction (``authority.management.changes``). It records the URL's origin
and the SHA-256 of the whole URL, never the URL itself (a path can carry a capability,
as many chat webhooks' do) and never the secret.

Where the URL may point: https only (``webhook_allow_http`` for development), and at
delivery time the host must resolve to public addresses only
(``webhook_allow_private_addresses`` for development), so that an owner cannot make the
authority call into its own network. An IPv6 address that carries an IPv4 one
(IPv4-mapped, -compatible or -translated, 6to4, Teredo) is judged by the IPv4 address as
well, and the NAT64 prefixes, which reach any IPv4 address, are refused outright. The name is
resolved once per connection and the connection goes to an address that was checked,
while the Host header, TLS SNI and the certificate check stay with the name: a name that
resolves elsewhere a moment later (DNS rebinding) reaches nothing new. Redirects are not
followed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import httpcore
import httpx
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import StringConstraints
from sqlalchemy import select, update

from authority import metrics
from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.management import changes as registry_changes
from authority.management import records
from authority.management.auth import READERS, WRITERS, Principal, may_see_owner, require_role
from authority.management.inputs import Body
from authority.secrets import new_id
from authority.storage.schema import owners

log = logging.getLogger("authority.webhooks")

EXTRAS_KEY: Final = "webhooks"
SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32
SIGNATURE_VERSION: Final = "v1"
#: HKDF "info" (RFC 5869 §3.2): this key seals webhook secrets and nothing else.
SEAL_LABEL: Final = b"authority/webhook-secrets/aes-256-gcm/v1"
SEAL_FORMAT_V1: Final = b"\x01"
NOT_FOUND: Final = "No such owner."

APPROVAL_REQUESTED: Final = "approval.requested"
AGENT_QUARANTINED: Final = "agent.quarantined"

WebhookUrl = Annotated[str, StringConstraints(min_length=8, max_length=2048)]


# --- the signature (Standard Webhooks, "Signature scheme") ----------------------------------
def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 after the ``whsec_`` prefix, decoded."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


# --- the secret at rest ------------------------------------------------------------------
class SecretSealer:
    """AES-256-GCM (SP 800-38D) under an HKDF key of its own; the owner id is the AAD, so
    a sealed secret copied onto another owner's row does not open."""

    __slots__ = ("_aead",)

    def __init__(self, instance_secret: bytes) -> None:
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=SEAL_LABEL).derive(
            instance_secret
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretSealer(...)"

    def seal(self, secret: str, *, owner_id: str) -> bytes:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), owner_id.encode())
        return SEAL_FORMAT_V1 + nonce + sealed

    def open(self, sealed: bytes, *, owner_id: str) -> str | None:
        if len(sealed) <= 13 or sealed[:1] != SEAL_FORMAT_V1:
            return None
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], owner_id.encode()).decode()
        except InvalidTag:
            return None


def sealer(services: Services) -> SecretSealer:
    current = services.extras.get("webhook_sealer")
    if not isinstance(current, SecretSealer):
        from authority.storage.secret_key import load_secret_key

        current = SecretSealer(load_secret_key(services.settings))
        services.extras["webhook_sealer"] = current
    return current


# --- the owner's registration ---------------------------------------------------------------
class WebhookSet(Body):
    url: WebhookUrl


@dataclass(frozen=True, slots=True)
class Webhook:
    owner_id: str
    url: str | None
    updated_at: int | None


@dataclass(frozen=True, slots=True)
class IssuedWebhook:
    webhook: Webhook
    secret: str  # shown once


def check_url(services: Services, url: str) -> str:
    """An absolute https URL (http only where allowed), without credentials or fragment."""
    invalid = InvalidRequest("The url field is invalid.")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise invalid
    schemes = ("https", "http") if services.settings.webhook_allow_http else ("https",)
    try:
        # urlsplit and its properties raise ValueError on malformed hosts ("[::1") and
        # ports: bad input, never a 500.
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        raise invalid from None
    if parts.scheme not in schemes or not hostname or parts.fragment:
        raise invalid
    if parts.username is not None or parts.password is not None:
        raise invalid
    del port  # read above only to validate it
    return url


async def _open_owner(conn: Any, principal: Principal, owner_id: str) -> Any:
    if not may_see_owner(principal, owner_id):
        raise NotFound(NOT_FOUND)
    row = await records.fetch(conn, owners, owner_id, NOT_FOUND, for_update=True)
    if row.status == "retired":
        raise Conflict("The owner is retired.")
    return row


async def set_webhook(
    services: Services, principal: Principal, owner_id: str, body: WebhookSet
) -> IssuedWebhook:
    """Register (or replace) the URL; a new secret every time, shown once."""
    require_role(principal, *WRITERS)
    url = check_url(services, body.url)
    secret = new_secret()
    now = services.now()
    async with services.engine.begin() as conn:
        row = await _open_owner(conn, principal, owner_id)
        await conn.execute(
            update(owners)
            .where(owners.c.id == owner_id)
            .values(
                webhook_url=url,
                webhook_secret=sealer(services).seal(secret, owner_id=owner_id),
                webhook_updated_at=now,
                updated_at=now,
            )
        )
        await registry_changes.record(
            conn,
            now=now,
            actor=principal.key_id,
            object_type="webhook",
            object_id=owner_id,
            change="created" if row.webhook_url is None else "updated",
            changes=_url_record(url),
            owner_id=owner_id,
        )
    return IssuedWebhook(Webhook(owner_id, url, now), secret)


def _url_record(url: str) -> dict[str, str]:
    """What the ledger keeps of a webhook URL: where it goes, and a digest of the rest."""
    parts = urlsplit(url)
    return {
        "url_origin": f"{parts.scheme}://{parts.netloc}",
        "url_sha256": hashlib.sha256(url.encode()).hexdigest(),
    }


async def get_webhook(services: Services, principal: Principal, owner_id: str) -> Webhook:
    require_role(principal, *READERS)
    if not may_see_owner(principal, owner_id):
        raise NotFound(NOT_FOUND)
    async with services.engine.connect() as conn:
        row = await records.fetch(conn, owners, owner_id, NOT_FOUND)
    if row.webhook_url is None:
        raise NotFound("The owner has no webhook.")
    return Webhook(owner_id, row.webhook_url, row.webhook_updated_at)


async def delete_webhook(services: Services, principal: Principal, owner_id: str) -> Webhook:
    require_role(principal, *WRITERS)
    now = services.now()
    async with services.engine.begin() as conn:
        row = await _open_owner(conn, principal, owner_id)
        await conn.execute(
            update(owners)
            .where(owners.c.id == owner_id)
            .values(webhook_url=None, webhook_secret=None, webhook_updated_at=now, updated_at=now)
        )
        if row.webhook_url is not None:
            await registry_changes.record(
                conn,
                now=now,
                actor=principal.key_id,
                object_type="webhook",
                object_id=owner_id,
                change="deleted",
                owner_id=owner_id,
            )
    return Webhook(owner_id, None, now)


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


class AddressRefused(Exception):
    """The URL's host resolves to an address the authority does not call."""


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
Acceptable = Callable[[str], bool]

#: Never called, whatever they carry. NAT64, RFC 6052 §2.1 (well-known prefix) and
#: RFC 8215 (local-use): a translator turns these into any IPv4 address it can reach,
#: the operator's own network included. And prefixes that are not global but that
#: some versions of Python's registry table miss: site-local (RFC 3879, deprecated but
#: still routed inside some networks), SRv6 SIDs (RFC 9602), documentation (RFC 9637).
REFUSED_PREFIXES: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("fec0::/10"),
    ipaddress.IPv6Network("5f00::/16"),
    ipaddress.IPv6Network("3fff::/20"),
)
#: RFC 4291 §2.5.5.1, "IPv4-Compatible IPv6 address" ``::a.b.c.d`` (deprecated).
IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
#: RFC 2765 §2.1, "IPv4-translated address" ``::ffff:0:a.b.c.d`` (SIIT).
IPV4_TRANSLATED: Final = ipaddress.IPv6Network("::ffff:0:0:0/96")


async def resolve_system(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses that traffic to ``ip`` is delivered to or through."""
    if ip.ipv4_mapped is not None:  # RFC 4291 §2.5.5.2, ::ffff:a.b.c.d
        return [ip.ipv4_mapped]
    if ip in IPV4_COMPATIBLE or ip in IPV4_TRANSLATED:  # ::a.b.c.d, ::ffff:0:a.b.c.d
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:  # RFC 3056 §2, 2002:a.b.c.d::/48
        return [ip.sixtofour]
    if ip.teredo is not None:  # RFC 4380 §4, 2001::/32: the relay server and the client
        return list(ip.teredo)
    return []


def _global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def public(address: str) -> bool:
    """Whether ``address`` is one the authority may call: global, and so is every IPv4
    address it carries; never one of ``REFUSED_PREFIXES``."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in prefix for prefix in REFUSED_PREFIXES):
            return False
        if not all(_global(inner) for inner in embedded_ipv4(ip)):
            return False
    return _global(ip)


def _allow_any(address: str) -> bool:
    del address
    return True


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves a host once, checks every address, and connects to a checked one.

    httpcore hands the URL's host to ``connect_tcp`` and, for https, the same host to TLS
    as the server name (SNI and the certificate check); the Host header comes from the
    URL too. So the name is what TLS verifies and the address is what was checked.
    """

    def __init__(
        self,
        resolve: Resolve,
        acceptable: Acceptable,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolve = resolve
        self._acceptable = acceptable
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = list(await self._resolve(host, port))
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"cannot resolve: {type(exc).__name__}") from None
        # Every address must pass: a name with one private address could be steered to
        # it. The connection then goes to one of these very addresses, never to what the
        # name resolves to later.
        if not addresses or not all(self._acceptable(a) for a in addresses):
            raise AddressRefused("resolves to a non-public address")
        failure: Exception = httpcore.ConnectError("no address connected")
        for address in addresses:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=left,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("not a network address")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that connects through ``backend``.

    httpx does not take a network backend, so the pool it built is replaced by one with
    the same TLS context and limits and the pinning backend (httpcore's own seam).
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        context = httpx.create_ssl_context(trust_env=False)
        limits = httpx.Limits()
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


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
            acceptable = _allow_any if settings.webhook_allow_private_addresses else public
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

    def _put(self, item: Event, attempt: int) -> bool:
        try:
            self._queue.put_nowait((item, attempt))
        except asyncio.QueueFull:
            log.warning("webhook queue full: event %s for %s dropped", item.msg_id, item.owner_id)
            metrics.of(self._services).webhooks.labels("dropped").inc()
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
        counter = metrics.of(self._services).webhooks
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
        async with services.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(owners.c.webhook_url, owners.c.webhook_secret).where(
                        owners.c.id == item.owner_id
                    )
                )
            ).first()
        if row is None or row.webhook_url is None or row.webhook_secret is None:
            return None
        secret = sealer(services).open(row.webhook_secret, owner_id=item.owner_id)
        if secret is None:
            log.warning("webhook secret of %s does not open; not delivered", item.owner_id)
            return None
        if self._client is None:  # closed meanwhile
            return None
        sent = headers(secret, item.msg_id, services.now(), item.body)
        try:
            response = await self._client.post(row.webhook_url, content=item.body, headers=sent)
        except AddressRefused as exc:  # raised by PinnedBackend before any connection
            log.warning("webhook of %s not delivered: %s", item.owner_id, exc)
            metrics.of(services).webhooks.labels("refused").inc()
            return None
        except httpx.HTTPError as exc:
            log.info("webhook %s to %s: %s", item.msg_id, item.owner_id, type(exc).__name__)
            return False
        if 200 <= response.status_code < 300:
            metrics.of(services).webhooks.labels("delivered").inc()
            return True
        log.info("webhook %s to %s: HTTP %d", item.msg_id, item.owner_id, response.status_code)
        return False


def dispatcher(services: Services) -> Dispatcher:
    current = services.extras.get(EXTRAS_KEY)
    if not isinstance(current, Dispatcher):
        current = Dispatcher(services)
        services.extras[EXTRAS_KEY] = current
    return current


def notify(services: Services, owner_id: str, kind: str, data: dict[str, Any]) -> bool:
    """Queue one event for the owner's webhook; returns at once, never raises."""
    try:
        return dispatcher(services).notify(event(owner_id, kind, data, services.now()))
    except Exception as exc:  # a notice must never fail the request that caused it
        log.warning("webhook event for %s not queued: %s", owner_id, type(exc).__name__)
        return False


async def shutdown(services: Services) -> None:
    current = services.extras.pop(EXTRAS_KEY, None)
    if isinstance(current, Dispatcher):
        await current.close()
