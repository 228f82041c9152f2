"""The storage port of the tool registry (``management.tools``).

A tool's name is unique (``TAKEN``). Registering, changing and retiring a tool each
append their ledger entries in the same transaction; retiring records the tool's
revocation event too. See ``storage.registry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written


@dataclass(frozen=True, slots=True)
class ToolRow:
    id: str
    name: str
    description: str | None
    resource_server_id: str
    actions: list[str]
    read_actions: list[str]
    risk_tier: int
    approval_required: bool
    single_use: bool
    dpop_required: bool
    max_token_lifetime: int | None
    status: str  # active | retired
    created_at: int
    updated_at: int


class ToolStore(Protocol):
    async def get(self, tool_id: str) -> ToolRow | None:
        """The tool, or None."""

    async def page(self, *, limit: int, after: Position | None) -> RowPage[ToolRow]:
        """Up to ``limit`` tools after ``after`` in (created_at, id) order."""

    async def create(self, tool: ToolRow, entries: Sequence[Entry]) -> ToolRow | Taken:
        """Insert the tool and append ``entries``, unless its name is taken."""

    async def replace(
        self,
        expected: ToolRow,
        new: ToolRow,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
    ) -> Written[ToolRow] | Stale | Taken:
        """Store ``new``, append ``entries`` and record ``events`` (last), in one
        transaction, if the tool is still ``expected`` and a new name is free."""
