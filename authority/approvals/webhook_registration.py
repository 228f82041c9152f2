"""An owner's webhook: registering, reading and removing the one URL notices go to.

https only (``webhook_allow_http`` for development), no credentials or fragment; a new
secret every time, shown once. Every change is a ``registry_changed`` ledger entry in
the same transaction (``authority.management.changes``), which records the URL's origin
and the SHA-256 of the whole URL, never the URL itself (a path can carry a capability,
as many chat webhooks' do) and never the secret.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import StringConstraints
from sqlalchemy import update

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.management import changes as registry_changes
from authority.management.auth import READERS, WRITERS, Principal, may_see_owner, require_role
from authority.management.inputs import Body
from authority.storage.schema import owners
from authority.storage.sql import records
from authority.storage.sql.ledger import append_many

from .webhook_signing import new_secret

NOT_FOUND: Final = "No such owner."

WebhookUrl = Annotated[str, StringConstraints(min_length=8, max_length=2048)]


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
                webhook_secret=services.webhook_sealer.seal(secret, owner_id=owner_id),
                webhook_updated_at=now,
                updated_at=now,
            )
        )
        entry = registry_changes.entry(
            now=now,
            actor=principal.key_id,
            object_type="webhook",
            object_id=owner_id,
            change="created" if row.webhook_url is None else "updated",
            changes=_url_record(url),
            owner_id=owner_id,
        )
        await append_many(conn, [entry])
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
            entry = registry_changes.entry(
                now=now,
                actor=principal.key_id,
                object_type="webhook",
                object_id=owner_id,
                change="deleted",
                owner_id=owner_id,
            )
            await append_many(conn, [entry])
    return Webhook(owner_id, None, now)
