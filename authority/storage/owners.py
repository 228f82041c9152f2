"""The storage port of the owners registry (``authority.management.owners``).

Owners are read by id and paged; a new owner's name must be free (``TAKEN``), and so
must a new name (``replace``). Retiring is final and revokes the owner's API keys, with
its ledger entry and the owner's revocation event, in the one transaction of ``retire``.
See ``storage.registry`` for reads, replacements and the race for a name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written


@dataclass(frozen=True, slots=True)
class OwnerRow:
    """An owner as the registry stores it (its webhook is ``approvals``' business)."""

    id: str
    name: str
    email: str | None
    status: str  # active | suspended | retired
    created_at: int
    updated_at: int


class OwnerStore(Protocol):
    async def get(self, owner_id: str) -> OwnerRow | None:
        """The owner, or None."""

    async def page(self, *, limit: int, after: Position | None) -> RowPage[OwnerRow]:
        """Up to ``limit`` owners after ``after`` in (created_at, id) order."""

    async def create(self, owner: OwnerRow) -> OwnerRow | Taken:
        """Insert the owner, unless its name is taken."""

    async def replace(self, expected: OwnerRow, new: OwnerRow) -> Written[OwnerRow] | Stale | Taken:
        """Store ``new`` if the owner is still ``expected`` and a new name is free."""

    async def retire(
        self, expected: OwnerRow, new: OwnerRow, *, entries: Sequence[Entry], event: NewEvent
    ) -> Written[OwnerRow] | Stale:
        """Store ``new`` (the retired owner) if the owner is still ``expected``.

        In the same transaction the owner's API keys not revoked yet are revoked at
        ``new.updated_at``, ``entries`` are appended and ``event`` is recorded, last.
        """
