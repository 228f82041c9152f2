"""The owners port (``storage.owners``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Sequence

from authority.ledger.entries import Entry
from authority.storage.owners import OwnerRow
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written

from . import Tables
from .registry import Table


class MemoryOwnerStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._owners = Table(tables, tables.owners, OwnerRow, unique=(("name",),))

    async def get(self, owner_id: str) -> OwnerRow | None:
        return self._owners.get(owner_id)

    async def page(self, *, limit: int, after: Position | None) -> RowPage[OwnerRow]:
        return self._owners.page(limit=limit, after=after)

    async def create(self, owner: OwnerRow) -> OwnerRow | Taken:
        return self._owners.create(owner, ())

    async def replace(self, expected: OwnerRow, new: OwnerRow) -> Written[OwnerRow] | Stale | Taken:
        return self._owners.replace(expected, new)

    async def retire(
        self, expected: OwnerRow, new: OwnerRow, *, entries: Sequence[Entry], event: NewEvent
    ) -> Written[OwnerRow] | Stale:
        def revoke_keys() -> None:
            for key in self._tables.api_keys.values():
                if key.get("owner_id") == new.id and key.get("revoked_at") is None:
                    key["revoked_at"] = new.updated_at

        written = self._owners.replace(
            expected, new, entries=entries, events=[event], also=revoke_keys
        )
        if isinstance(written, Taken):  # the name is the one it had: cannot happen
            raise RuntimeError("retiring an owner changed its name")
        return written
