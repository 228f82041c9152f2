"""The storage port of owners' webhooks: the one URL (and sealed secret) notices go to.

Registering and removing lock the owner's row, hand it to the flow's ``Change`` (which
checks it, raising the flow's error to write nothing, and returns the change's ledger
entry, or None for none) and write the URL and the entry in one transaction. Delivery
reads the URL and the sealed secret without a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry


@dataclass(frozen=True, slots=True)
class OwnerWebhook:
    """An owner's webhook registration, as stored."""

    owner_id: str
    owner_status: str
    url: str | None
    updated_at: int | None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a notice goes: the URL and the secret sealed under the instance's key
    (``approvals.webhook_signing.SecretSealer``). Either is None when there is none."""

    url: str | None
    sealed_secret: bytes | None


#: The flow's decision on the owner as stored (its row locked): the change's ledger
#: entry, None for no entry, or an ``AuthorityError`` raised to change nothing.
Change = Callable[[OwnerWebhook], Entry | None]


class WebhookStore(Protocol):
    async def target(self, owner_id: str) -> Target | None:
        """The owner's URL and sealed secret for a delivery; None: no such owner."""

    async def get(self, owner_id: str) -> OwnerWebhook | None:
        """The owner's registration; None: no such owner."""

    async def register(
        self, owner_id: str, *, url: str, sealed_secret: bytes, now: int, change: Change
    ) -> OwnerWebhook | None:
        """Set the owner's URL and sealed secret (updated at ``now``) with ``change``'s
        entry, in one transaction. The registration as it was before; None, with
        nothing written, for no such owner."""

    async def remove(self, owner_id: str, *, now: int, change: Change) -> OwnerWebhook | None:
        """Clear the owner's URL and secret (updated at ``now``) with ``change``'s entry
        if any, in one transaction. The registration as it was before; None, with
        nothing written, for no such owner."""
