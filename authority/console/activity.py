"""What an owner sees happen: their recent decisions and containment events, from the ledger.

Read through the ledger's port (``storage.ledger_reader``), so only sequenced entries
appear, in ledger order; the newest are found by reading a bounded window of the latest
leaves (``WINDOW``), never the whole ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from authority.context import Services
from authority.storage.ledger_reader import EntryFilter

#: Latest leaves read for a page of recent activity.
WINDOW: Final = 5000
SHOWN: Final = 50
#: What stops (or lets go of) an owner's agents and delegations.
CONTAINMENT_KINDS: Final = frozenset(
    {"kill_switch", "agent_quarantined", "agent_contained", "agent_released", "delegation_revoked"}
)


@dataclass(frozen=True, slots=True)
class Event:
    leaf_index: int
    time: int
    kind: str
    body: dict[str, Any]

    @property
    def summary(self) -> str:
        """One line of plain text (rendered escaped, or as a text node)."""
        b = self.body
        who = b.get("actor", "")
        if self.kind == "grant":
            what = f"{b.get('decision')} {b.get('tool') or ''} {b.get('resource') or ''}".strip()
            return f"{what} for {b.get('agent_id')}" + (
                f" ({b['reason']})" if b.get("reason") else ""
            )
        if self.kind == "kill_switch":
            return f"kill switch by {who}: {b.get('reason') or ''}"
        if self.kind == "agent_contained":
            return f"{b.get('agent_id')} contained: {b.get('violations')} violations"
        if self.kind in ("agent_quarantined", "agent_released"):
            verb = "quarantined" if self.kind == "agent_quarantined" else "released"
            return f"{b.get('agent_id')} {verb} by {who}" + (
                f": {b['reason']}" if b.get("reason") else ""
            )
        if self.kind == "delegation_revoked":
            return f"{b.get('delegation_id')} revoked by {who}"
        if self.kind == "approval_decided":
            return f"{b.get('approval_id')} {b.get('decision')} by {who}"
        return self.kind


async def _window(
    services: Services, owner_id: str, after: int | None, *, latest: bool = False
) -> list[Event]:
    reader = services.ledger_reader
    if latest:
        size = await reader.tree_size()
        after = size - WINDOW - 1 if size > WINDOW else None
    rows = await reader.entries(EntryFilter(owner_id=owner_id), after=after, limit=WINDOW)
    events = []
    for row in rows:
        body = orjson.loads(row.body)
        events.append(Event(row.leaf_index, int(body["time"]), str(body["kind"]), body))
    return events


@dataclass(frozen=True, slots=True)
class Activity:
    decisions: list[Event]
    containment: list[Event]
    #: The last leaf index read: where the live updates go on from.
    last_leaf: int


async def recent(services: Services, owner_id: str) -> Activity:
    events = await _window(services, owner_id, None, latest=True)
    decisions = [e for e in events if e.kind in ("grant", "approval_decided")]
    containment = [e for e in events if e.kind in CONTAINMENT_KINDS]
    last = (
        events[-1].leaf_index if events else max(await services.ledger_reader.tree_size() - 1, -1)
    )
    return Activity(decisions[-SHOWN:][::-1], containment[-SHOWN:][::-1], last)


async def containment_since(
    services: Services, owner_id: str, after: int
) -> tuple[list[Event], int]:
    """Containment events after leaf ``after``, oldest first, and the last leaf read."""
    events = await _window(services, owner_id, after if after >= 0 else None)
    last = events[-1].leaf_index if events else after
    return [e for e in events if e.kind in CONTAINMENT_KINDS][:SHOWN], last


async def kills(services: Services, owner_id: str) -> list[Event]:
    """The owner's kill switches within the window, newest first."""
    events = await _window(services, owner_id, None, latest=True)
    return [e for e in events if e.kind == "kill_switch"][::-1][:SHOWN]


#: Changes of one agent's autonomy level shown on its card, the newest last.
AUTONOMY_SHOWN: Final = 20


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One ``autonomy_changed`` entry: from which level to which, by whom and why."""

    time: int
    previous: int | None
    level: int
    actor: str
    reason: str | None


async def autonomy_history(services: Services, agent_id: str) -> list[LevelChange]:
    """The agent's latest level changes in ledger order (sequenced entries only)."""
    changes: list[LevelChange] = []
    after: int | None = None
    while True:
        found = await services.ledger_reader.entries(
            EntryFilter(agent_id=agent_id, kind="autonomy_changed"), after=after, limit=500
        )
        for entry in found:
            body = orjson.loads(entry.body)
            changes.append(
                LevelChange(
                    time=int(body["time"]),
                    previous=body.get("previous_level"),
                    level=int(body["level"]),
                    actor=str(body.get("actor", "")),
                    reason=body.get("reason"),
                )
            )
        if len(found) < 500:
            return changes[-AUTONOMY_SHOWN:]
        after = found[-1].leaf_index
