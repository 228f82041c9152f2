"""An owner's webhook: registering, reading and removing the one URL notices go to.

https only (``webhook_allow_http`` for development), no credentials or fragment; a new
secret every time, shown once. Every change is a ``registry_changed`` ledger entry in
the same transaction (``authority.management.changes``; ``storage.webhooks``), which
records the URL's origin and the SHA-256 of the whole URL, never the URL itself (a path
can carry a capability, as many chat webhooks' do) and never the secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import StringConstraints

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.ledger.entries import Entry
from authority.management import changes as registry_changes
from authority.management import records
from authority.management.auth import READERS, WRITERS, Principal, may_see_owner, require_role
from authority.management.inputs import Body
from authority.storage.webhooks import OwnerWebhook

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
    schemes = ("https", "http") if services.settings.webhook_allow_http else ("https",)
    invalid = InvalidRequest(
        f"The url field must be an absolute {' or '.join(schemes)} URL, "
        "without credentials or fragment."
    )
    if not url.isprintable() or any(c.isspace() for c in url):
        raise invalid
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


def _visible(principal: Principal, owner_id: str) -> None:
    if not may_see_owner(principal, owner_id) or not records.valid_id(owner_id):
        raise NotFound(NOT_FOUND)


def _open(owner: OwnerWebhook) -> None:
    """What a change needs of the owner, checked on its locked row."""
    if owner.owner_status == "retired":
        raise Conflict("The owner is retired.")


def _entry(
    principal: Principal,
    owner_id: str,
    change: Literal["created", "updated", "deleted"],
    now: int,
    changes: Mapping[str, str] | None = None,
) -> Entry:
    """The change's ``registry_changed`` entry (``management.changes``)."""
    return (
        registry_changes.KIND,
        registry_changes.VERSION,
        now,
        {
            "object_type": "webhook",
            "object_id": owner_id,
            "change": change,
            "changes": dict(changes or {}),
            "keys": None,
            "owner_id": owner_id,
            "agent_id": None,
            "tool": None,
            "actor": principal.key_id,
        },
    )


async def set_webhook(
    services: Services, principal: Principal, owner_id: str, body: WebhookSet
) -> IssuedWebhook:
    """Register (or replace) the URL; a new secret every time, shown once."""
    require_role(principal, *WRITERS)
    url = check_url(services, body.url)
    secret = new_secret()
    now = services.now()
    _visible(principal, owner_id)

    def change(owner: OwnerWebhook) -> Entry:
        _open(owner)
        kind: Literal["created", "updated"] = "created" if owner.url is None else "updated"
        return _entry(principal, owner_id, kind, now, _url_record(url))

    registered = await services.webhook_store.register(
        owner_id,
        url=url,
        sealed_secret=services.webhook_sealer.seal(secret, owner_id=owner_id),
        now=now,
        change=change,
    )
    if registered is None:
        raise NotFound(NOT_FOUND)
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
    _visible(principal, owner_id)
    owner = await services.webhook_store.get(owner_id)
    if owner is None:
        raise NotFound(NOT_FOUND)
    if owner.url is None:
        raise NotFound("The owner has no webhook.")
    return Webhook(owner_id, owner.url, owner.updated_at)


async def delete_webhook(services: Services, principal: Principal, owner_id: str) -> Webhook:
    require_role(principal, *WRITERS)
    now = services.now()
    _visible(principal, owner_id)

    def change(owner: OwnerWebhook) -> Entry | None:
        _open(owner)
        return None if owner.url is None else _entry(principal, owner_id, "deleted", now)

    if await services.webhook_store.remove(owner_id, now=now, change=change) is None:
        raise NotFound(NOT_FOUND)
    return Webhook(owner_id, None, now)
