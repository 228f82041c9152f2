"""In-memory implementations of the storage ports, on plain dicts (see ``storage``).

``Tables`` holds the rows the memory ports share, each a dict named by the SQL columns
(``storage.schema``), keyed by id as in SQL: a grant revoked through the memory
revocation port is revoked for the memory introspection port too. One event loop, no
``await`` between reading a row and writing it: every method is atomic, as a SQL
transaction is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

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
    #: Appended ledger entries: the ``ledger_entries`` rows (``ledger.entries.entry_row``);
    #: an entry's id is its position plus one, drawn in commit order as on SQLite.
    ledger_entries: list[dict[str, Any]] = field(default_factory=list)
    #: The tree: ``ledger_leaves`` rows by leaf index, the hashes of ``ledger_nodes`` by
    #: (level, node_index), and ``ledger_checkpoints`` rows by increasing tree size.
    ledger_leaves: list[dict[str, Any]] = field(default_factory=list)
    ledger_nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)
    ledger_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    #: One sequencer at a time over these tables (PostgreSQL's advisory lock in SQL).
    sequencer_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: ``signing_keys`` rows by kid.
    signing_keys: Rows = field(default_factory=dict)
    #: Recorded revocation events, ``revocation_events`` rows; ids count from 1.
    revocation_events: list[dict[str, Any]] = field(default_factory=list)
    #: The console's rows (``console_*``), by id.
    console_people: Rows = field(default_factory=dict)
    console_credentials: Rows = field(default_factory=dict)
    console_enrolments: Rows = field(default_factory=dict)
    console_sessions: Rows = field(default_factory=dict)
    console_challenges: Rows = field(default_factory=dict)

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
