"""The API keys port (``storage.api_keys``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Sequence

from authority.ledger.entries import Entry
from authority.storage.api_keys import KeyHolder, KeyRow
from authority.storage.registry import Position, RowPage, Stale, Taken, Written

from . import Tables
from . import column as _get
from .registry import Table


class MemoryApiKeyStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._keys = Table(tables, tables.api_keys, KeyRow)

    async def holder(self, key_hash: str) -> KeyHolder | None:
        for key in self._tables.api_keys.values():
            if key.get("key_hash") == key_hash and key.get("revoked_at") is None:
                owner = self._tables.owners.get(key.get("owner_id"))  # type: ignore[arg-type]
                return KeyHolder(
                    key_id=key["id"],
                    role=key["role"],
                    owner_id=key.get("owner_id"),
                    owner_status=_get(owner, "status"),
                )
        return None

    async def get(self, key_id: str, *, owner_id: str | None = None) -> KeyRow | None:
        return self._keys.get(key_id, owner_id=owner_id)

    async def page(
        self, *, limit: int, after: Position | None, owner_id: str | None = None
    ) -> RowPage[KeyRow]:
        return self._keys.page(limit=limit, after=after, owner_id=owner_id)

    async def all(self) -> list[KeyRow]:
        rows = sorted(self._tables.api_keys.values(), key=lambda r: (r["created_at"], r["id"]))
        return [self._keys.load(row) for row in rows]

    async def role_of(self, key_id: str) -> str | None:
        return _get(self._tables.api_keys.get(key_id), "role")  # type: ignore[no-any-return]

    async def has_active_admin(self) -> bool:
        return any(
            key["role"] == "admin" and key.get("revoked_at") is None
            for key in self._tables.api_keys.values()
        )

    async def create(self, key: KeyRow, key_hash: str, entries: Sequence[Entry]) -> KeyRow:
        created = self._keys.create(key, entries, extra={"key_hash": key_hash})
        if isinstance(created, Taken):  # the same generated id twice: cannot happen
            raise RuntimeError("an API key's id collided")
        return created

    async def replace(
        self, expected: KeyRow, new: KeyRow, *, entries: Sequence[Entry] = ()
    ) -> Written[KeyRow] | Stale:
        written = self._keys.replace(expected, new, entries=entries)
        if isinstance(written, Taken):  # no unique column is ever replaced
            raise RuntimeError("replacing an API key broke a unique constraint")
        return written
