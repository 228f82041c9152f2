"""The owners' webhooks port (``storage.webhooks``) on ``Tables``."""

from __future__ import annotations

from typing import Any

from authority.storage.webhooks import Change, OwnerWebhook, Target

from . import Tables


def _webhook(row: dict[str, Any]) -> OwnerWebhook:
    return OwnerWebhook(
        row["id"], row["status"], row.get("webhook_url"), row.get("webhook_updated_at")
    )


class MemoryWebhookStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def target(self, owner_id: str) -> Target | None:
        row = self._tables.owners.get(owner_id)
        return None if row is None else Target(row.get("webhook_url"), row.get("webhook_secret"))

    async def get(self, owner_id: str) -> OwnerWebhook | None:
        row = self._tables.owners.get(owner_id)
        return None if row is None else _webhook(row)

    async def register(
        self, owner_id: str, *, url: str, sealed_secret: bytes, now: int, change: Change
    ) -> OwnerWebhook | None:
        return self._write(
            owner_id,
            change,
            webhook_url=url,
            webhook_secret=sealed_secret,
            webhook_updated_at=now,
            updated_at=now,
        )

    async def remove(self, owner_id: str, *, now: int, change: Change) -> OwnerWebhook | None:
        return self._write(
            owner_id,
            change,
            webhook_url=None,
            webhook_secret=None,
            webhook_updated_at=now,
            updated_at=now,
        )

    def _write(self, owner_id: str, change: Change, **values: Any) -> OwnerWebhook | None:
        tables = self._tables
        row = tables.owners.get(owner_id)
        if row is None:
            return None
        before = _webhook(row)
        entry = change(before)
        written = tables.entry_rows([entry] if entry is not None else [])
        row.update(values)
        tables.ledger_entries.extend(written)
        return before
