"""In-memory implementations of the storage ports, on plain dicts (see ``storage``).

``Tables`` holds the rows the memory ports share, each a dict named by the SQL columns
(``storage.schema``), keyed by id as in SQL: a grant revoked through the memory
revocation port is revoked for the memory introspection port too. One event loop, no
``await`` between reading a row and writing it: every method is atomic, as a SQL
transaction is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from authority.storage.replay import SingleUse

Rows = dict[str, dict[str, Any]]


def column(row: dict[str, Any] | None, name: str) -> Any:
    """A row's column, or None for no row (an outer join's missing side)."""
    return None if row is None else row.get(name)


@dataclass
class Tables:
    owners: Rows = field(default_factory=dict)
    agents: Rows = field(default_factory=dict)
    delegations: Rows = field(default_factory=dict)
    tools: Rows = field(default_factory=dict)
    resource_servers: Rows = field(default_factory=dict)
    grants: Rows = field(default_factory=dict)
    approvals: Rows = field(default_factory=dict)
    #: Spent single uses (``storage.replay``): key -> expires_at, the ``used_jtis`` rows.
    used_jtis: dict[str, int] = field(default_factory=dict)
    #: Appended ledger entries: the ``ledger_entries`` rows (``ledger.entries.entry_row``).
    ledger_entries: list[dict[str, Any]] = field(default_factory=list)
    #: Recorded revocation events, ``revocation_events`` rows; ids count from 1.
    revocation_events: list[dict[str, Any]] = field(default_factory=list)

    def grant_by(self, column: str, value: Any) -> dict[str, Any] | None:
        """The grant whose ``column`` (unique: ``jti``, ``token_hash``) is ``value``."""
        for row in self.grants.values():
            if row.get(column) == value:
                return row
        return None

    def tool_named(self, name: Any) -> dict[str, Any] | None:
        for row in self.tools.values():
            if row.get("name") == name:
                return row
        return None

    def unspent(self, uses: Sequence[SingleUse]) -> tuple[bool, ...]:
        """For each use, whether spending it now would be its first use (nothing written)."""
        return tuple(use.key not in self.used_jtis for use in uses)

    def spend(self, uses: Sequence[SingleUse], fresh: Sequence[bool]) -> None:
        """Record the uses ``unspent`` found fresh; the others are recorded already."""
        for use, new in zip(uses, fresh, strict=True):
            if new:
                self.used_jtis[use.key] = use.expires_at
