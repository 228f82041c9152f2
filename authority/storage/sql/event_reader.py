"""The revocation feed's read port (``storage.event_reader``) in SQL.

Reads need no transaction (an event never changes once written, and "after N" is a
prefix whenever it is read), so they run on the reading engine. ``stored`` is at most
three statements on one connection, whatever the batch: the grants of the tokens, the
delegations, and the tools those delegations and the tool events name.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.event_reader import Live, Scope, Stored, Subjects
from authority.storage.events import RevocationEvent
from authority.storage.schema import delegations, grants, resource_servers, revocation_events, tools


def _event(row: Row[Any]) -> RevocationEvent:
    return RevocationEvent(
        id=int(row.id),
        kind=row.kind,
        time=int(row.created_at),
        expires_at=row.expires_at,
        jti=row.jti,
        delegation_id=row.delegation_id,
        agent_id=row.agent_id,
        owner_id=row.owner_id,
        tool=row.tool,
    )


def _live(live: Live) -> ColumnElement[bool]:
    c = revocation_events.c
    return or_(c.expires_at.is_(None), c.expires_at > live.now, c.created_at >= live.written_since)


class SqlEventReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def last_id(self) -> int:
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(func.max(revocation_events.c.id)))).scalar()
        return int(value or 0)

    async def after(
        self, event_id: int, limit: int, *, live: Live | None = None
    ) -> list[RevocationEvent]:
        query = select(revocation_events).where(revocation_events.c.id > event_id)
        if live is not None:
            query = query.where(_live(live))
        query = query.order_by(revocation_events.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return [_event(row) for row in (await conn.execute(query)).all()]

    async def stored(self, subjects: Subjects) -> Stored:
        async with self._engine.connect() as conn:
            token_servers = await _token_servers(conn, subjects)
            scopes = await _scopes(conn, subjects)
            names = sorted({name for scope in scopes for name in scope.tools} | subjects.tools)
            hosts: dict[str, str] = {}
            if names:
                query = select(tools.c.name, tools.c.resource_server_id).where(
                    tools.c.name.in_(names)
                )
                hosts = {row.name: row.resource_server_id for row in await conn.execute(query)}
        return Stored(token_servers=token_servers, scopes=scopes, hosts=hosts)


async def _token_servers(conn: AsyncConnection, subjects: Subjects) -> dict[str, frozenset[str]]:
    """jti -> the resource server that is the token's audience (none if unregistered)."""
    if not subjects.jtis:
        return {}
    query = (
        select(grants.c.jti, resource_servers.c.id)
        .select_from(
            grants.outerjoin(resource_servers, resource_servers.c.audience == grants.c.audience)
        )
        .where(grants.c.jti.in_(sorted(subjects.jtis)))
    )
    found: dict[str, set[str]] = {}
    for jti, server_id in (await conn.execute(query)).all():
        servers = found.setdefault(jti, set())
        if server_id is not None:
            servers.add(server_id)
    return {jti: frozenset(servers) for jti, servers in found.items()}


async def _scopes(conn: AsyncConnection, subjects: Subjects) -> tuple[Scope, ...]:
    c = delegations.c
    wanted: list[ColumnElement[bool]] = []
    if subjects.delegation_ids:
        wanted.append(c.id.in_(sorted(subjects.delegation_ids)))
    if subjects.agent_ids or subjects.owner_ids:
        whose = []
        if subjects.agent_ids:
            whose.append(c.agent_id.in_(sorted(subjects.agent_ids)))
        if subjects.owner_ids:
            whose.append(c.owner_id.in_(sorted(subjects.owner_ids)))
        wanted.append(and_(or_(*whose), c.expires_at > subjects.expiring_after))
    if not wanted:
        return ()
    query = select(c.id, c.agent_id, c.owner_id, c.expires_at, c.scope).where(or_(*wanted))
    return tuple(
        Scope(
            id=row.id,
            agent_id=row.agent_id,
            owner_id=row.owner_id,
            expires_at=int(row.expires_at),
            tools=tuple(str(entry["tool"]) for entry in orjson.loads(row.scope)),
        )
        for row in (await conn.execute(query)).all()
    )
