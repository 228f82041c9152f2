"""The storage port of the management API's keys (``management.api_keys``, ``management.auth``).

A key is found by its keyed hash (the secret itself is never stored); its row keeps who
held which role and when it was revoked. Creating and revoking a key each append their
ledger entries in the same transaction. Visibility is the ``owner_id`` of the reads.
See ``storage.registry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry
from authority.storage.registry import Position, RowPage, Stale, Written


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key's registration; its hash is written once, with ``create``, and never read."""

    id: str
    role: str  # admin | owner | auditor
    owner_id: str | None  # an owner key's owner; None for the others
    label: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """Who holds an unrevoked key: its id and role, and its owner's status (owner keys)."""

    key_id: str
    role: str
    owner_id: str | None
    owner_status: str | None


class ApiKeyStore(Protocol):
    async def holder(self, key_hash: str) -> KeyHolder | None:
        """The unrevoked key whose keyed hash is ``key_hash``, or None: one read."""

    async def get(self, key_id: str, *, owner_id: str | None = None) -> KeyRow | None:
        """The key, or None; with ``owner_id``, None unless it is that owner's."""

    async def page(
        self, *, limit: int, after: Position | None, owner_id: str | None = None
    ) -> RowPage[KeyRow]:
        """Up to ``limit`` keys (of ``owner_id`` if given) after ``after``."""

    async def all(self) -> list[KeyRow]:
        """Every key, revoked or not, in (created_at, id) order."""

    async def role_of(self, key_id: str) -> str | None:
        """The role of the key ``key_id`` (revoked or not), or None for no such key."""

    async def has_active_admin(self) -> bool:
        """Whether an unrevoked admin key exists."""

    async def create(self, key: KeyRow, key_hash: str, entries: Sequence[Entry]) -> KeyRow:
        """Insert the key with its hash and append ``entries``, in one transaction.

        The hash is a 256-bit secret's: a collision is not a race to report.
        """

    async def replace(
        self, expected: KeyRow, new: KeyRow, *, entries: Sequence[Entry] = ()
    ) -> Written[KeyRow] | Stale:
        """Store ``new`` and append ``entries`` if the key is still ``expected``."""
