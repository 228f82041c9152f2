"""The revocation feed's read port (``storage.event_reader``) on ``Tables``."""

from __future__ import annotations

from typing import Any

import orjson

from authority.storage.event_reader import Live, Scope, Stored, Subjects
from authority.storage.events import RevocationEvent

from . import Tables


def _event(row: dict[str, Any]) -> RevocationEvent:
    return RevocationEvent(
        id=row["id"],
        kind=row["kind"],
        time=row["created_at"],
        expires_at=row.get("expires_at"),
        jti=row.get("jti"),
        delegation_id=row.get("delegation_id"),
        agent_id=row.get("agent_id"),
        owner_id=row.get("owner_id"),
        tool=row.get("tool"),
    )


def _admits(live: Live, row: dict[str, Any]) -> bool:
    expires_at = row.get("expires_at")
    return expires_at is None or expires_at > live.now or row["created_at"] >= live.written_since


class MemoryEventReader:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def last_id(self) -> int:
        return max((row["id"] for row in self._tables.revocation_events), default=0)

    async def after(
        self, event_id: int, limit: int, *, live: Live | None = None
    ) -> list[RevocationEvent]:
        rows = sorted(self._tables.revocation_events, key=lambda row: row["id"])
        chosen = [
            row for row in rows if row["id"] > event_id and (live is None or _admits(live, row))
        ]
        return [_event(row) for row in chosen[: max(0, limit)]]

    async def stored(self, subjects: Subjects) -> Stored:
        tables = self._tables
        token_servers: dict[str, frozenset[str]] = {}
        for grant in tables.grants.values():
            jti = grant.get("jti")
            if jti in subjects.jtis:
                token_servers[jti] = token_servers.get(jti, frozenset()) | {
                    server["id"]
                    for server in tables.resource_servers.values()
                    if server.get("audience") == grant.get("audience")
                }
        scopes = tuple(
            Scope(
                id=row["id"],
                agent_id=row["agent_id"],
                owner_id=row["owner_id"],
                expires_at=row["expires_at"],
                tools=tuple(str(entry["tool"]) for entry in orjson.loads(row["scope"])),
            )
            for row in tables.delegations.values()
            if row["id"] in subjects.delegation_ids
            or (
                (row["agent_id"] in subjects.agent_ids or row["owner_id"] in subjects.owner_ids)
                and row["expires_at"] > subjects.expiring_after
            )
        )
        names = {name for scope in scopes for name in scope.tools} | subjects.tools
        hosts = {
            row["name"]: row["resource_server_id"]
            for row in tables.tools.values()
            if row.get("name") in names
        }
        return Stored(token_servers=token_servers, scopes=scopes, hosts=hosts)
