"""In-memory implementations of the storage ports, on plain dicts (see ``storage``).

``Tables`` holds the rows the memory ports share, each a dict named by the SQL columns
(``storage.schema``), keyed by id as in SQL: a grant revoked through the memory
revocation port is revoked for the memory introspection port too. One event loop, no
``await`` between reading a row and writing it: every method is atomic, as a SQL
transaction is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from authority.ledger.entries import Entry, entry_row
from authority.storage.events import Kind, RevocationEvent
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
    trust_domains: Rows = field(default_factory=dict)
    grants: Rows = field(default_factory=dict)
    approvals: Rows = field(default_factory=dict)
    #: The kill switch's cascades, ``containment_cascades`` rows; ids count from 1.
    containment_cascades: list[dict[str, Any]] = field(default_factory=list)
    #: The management API's keys; ``key_hash`` is a column like the others.
    api_keys: Rows = field(default_factory=dict)
    #: Appended ledger entries: the ``ledger_entries`` rows (``ledger.entries.entry_row``);
    #: an entry's id is its position plus one, drawn in commit order as on SQLite.
    #: Spent single uses (``storage.replay``): key -> expires_at, the ``used_jtis`` rows.
    used_jtis: dict[str, int] = field(default_factory=dict)
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
    #: Call recordings, ``call_recordings`` rows by id; ``entry_id`` is the position of
    #: the call's entry in ``ledger_entries``, from 1.
    call_recordings: Rows = field(default_factory=dict)
    #: The console's rows (``console_*``), by id.
    console_people: Rows = field(default_factory=dict)
    console_credentials: Rows = field(default_factory=dict)
    console_enrolments: Rows = field(default_factory=dict)
    console_sessions: Rows = field(default_factory=dict)
    console_challenges: Rows = field(default_factory=dict)
    #: The Cedar policy's ``policy_versions`` rows by number, and ``policy_activations``
    #: rows in order (the last names the active version).
    policy_versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    policy_activations: list[dict[str, Any]] = field(default_factory=list)
    #: The behaviour tables (``behaviour_*``, ``promotion_proposals``): the calls by
    #: (agent_id, tool, action, resource), the totals by agent_id, the fold's cursor.
    behaviour_calls: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    behaviour_agents: Rows = field(default_factory=dict)
    behaviour_folded_until: int | None = None
    promotion_proposals: Rows = field(default_factory=dict)

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

    def entry_rows(self, entries: Iterable[Entry]) -> list[dict[str, Any]]:
        """The rows of ``entries``, every one validated (``entry_row``): build them before
        changing anything, as a SQL transaction rolls back on ``MalformedEntry``."""
        return [
            entry_row(kind=kind, version=version, created_at=created_at, record=record)
            for kind, version, created_at, record in entries
        ]

    def record_event(
        self,
        *,
        kind: Kind,
        now: int,
        expires_at: int | None,
        jti: str | None = None,
        delegation_id: str | None = None,
        agent_id: str | None = None,
        owner_id: str | None = None,
        tool: str | None = None,
    ) -> RevocationEvent:
        """Record one revocation event (``storage.sql.events.record``)."""
        event = RevocationEvent(
            id=len(self.revocation_events) + 1,
            kind=kind,
            time=now,
            expires_at=expires_at,
            jti=jti,
            delegation_id=delegation_id,
            agent_id=agent_id,
            owner_id=owner_id,
            tool=tool,
        )
        self.revocation_events.append(
            {
                "id": event.id,
                "created_at": now,
                "kind": kind,
                "jti": jti,
                "delegation_id": delegation_id,
                "agent_id": agent_id,
                "owner_id": owner_id,
                "expires_at": expires_at,
                "tool": tool,
            }
        )
        return event

    def unspent(self, uses: Sequence[SingleUse]) -> tuple[bool, ...]:
        """For each use, whether spending it now would be its first use (nothing written)."""
        return tuple(use.key not in self.used_jtis for use in uses)

    def spend(self, uses: Sequence[SingleUse], fresh: Sequence[bool]) -> None:
        """Record the uses ``unspent`` found fresh; the others are recorded already."""
        for use, new in zip(uses, fresh, strict=True):
            if new:
                self.used_jtis[use.key] = use.expires_at


def page(
    rows: Iterable[dict[str, Any]],
    *,
    limit: int,
    after: tuple[int, str] | None,
    where: Callable[[dict[str, Any]], bool] = lambda row: True,
) -> tuple[Sequence[dict[str, Any]], tuple[int, str] | None]:
    """``storage.sql.records.page`` on rows: up to ``limit`` matching ``where`` after
    ``after`` in (created_at, id) order, and the last one's position when more follow."""
    chosen = sorted(
        (row for row in rows if where(row) and (after is None or _position(row) > after)),
        key=_position,
    )
    if len(chosen) <= limit:
        return chosen, None
    chosen = chosen[:limit]
    return chosen, _position(chosen[-1])


def _position(row: dict[str, Any]) -> tuple[int, str]:
    return (int(row["created_at"]), str(row["id"]))
