"""The exchange and client ports under test, on memory, SQLite and PostgreSQL, with the
rows they share (seeded as ``support.seed`` does) and the values a flow would pass in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, update

from authority.app import build_services
from authority.settings import Settings
from authority.storage import schema
from authority.storage.clients import ClientStore
from authority.storage.exchange import (
    ClosedApproval,
    Denial,
    ExchangeStore,
    GrantWrite,
    NewApproval,
    NewGrant,
    NotRequested,
    NotSpent,
    Registered,
    Spend,
)
from authority.storage.hot import MemoryHotState
from authority.storage.memory import Tables
from authority.storage.memory.clients import MemoryClientStore
from authority.storage.memory.exchange import MemoryExchangeStore
from authority.storage.memory.introspection import MemoryIntrospectionStore
from authority.storage.memory.revocation import MemoryRevocationStore
from authority.storage.replay import SingleUse, single_use

from .support import NOW, Seeded, Store

#: How many callers race in the concurrency rules.
RACERS = 50


@dataclass
class Ports:
    exchange: ExchangeStore
    clients: ClientStore
    store: Store  # seeds and reads the rows the ports share

    async def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``table`` (``used_jtis`` rows as {key, expires_at})."""
        tables = self.store.tables
        if tables is not None:
            if table == "used_jtis":
                return [{"key": k, "expires_at": v} for k, v in tables.used_jtis.items()]
            if table == "ledger_entries":
                return [dict(r) for r in tables.ledger_entries]
            return [dict(r) for r in getattr(tables, table).values()]
        services = self.store.services
        assert services is not None
        async with services.engine.connect() as conn:
            result = await conn.execute(select(schema.metadata.tables[table]))
            return [dict(r._mapping) for r in result]

    async def row(self, table: str, row_id: str) -> dict[str, Any]:
        [found] = [r for r in await self.rows(table) if r["id"] == row_id]
        return found

    async def update(self, table: str, row_id: str, **values: Any) -> None:
        tables = self.store.tables
        if tables is not None:
            getattr(tables, table)[row_id].update(values)
            return
        services = self.store.services
        assert services is not None
        target = schema.metadata.tables[table]
        async with services.engine.begin() as conn:
            await conn.execute(update(target).where(target.c.id == row_id).values(**values))

    async def entries(self) -> list[dict[str, Any]]:
        """The ledger entries' bodies, in the order written."""
        rows = await self.rows("ledger_entries")
        if self.store.tables is None:
            rows.sort(key=lambda r: r["id"])
        return [orjson.loads(r["body"]) for r in rows]


async def open_ports(sql_settings: Settings | None) -> AsyncIterator[Ports]:
    if sql_settings is None:
        tables = Tables()
        store = Store(MemoryIntrospectionStore(tables), MemoryRevocationStore(tables), tables, None)
        yield Ports(MemoryExchangeStore(tables), MemoryClientStore(tables), store)
        return
    services = build_services(sql_settings, hot=MemoryHotState())
    try:
        store = Store(services.introspection_store, services.revocation_store, None, services)
        yield Ports(services.exchange_store, services.client_store, store)
    finally:
        await services.sql.close()
        await services.hot.close()
        await services.engine.dispose()


# --- the values a flow passes in ----------------------------------------------------------
def registered(s: Seeded, **changes: Any) -> Registered:
    """The seeded registrations, as a decision read them."""
    values: dict[str, Any] = {
        "agent_jwks": '{"keys": []}',
        "autonomy_level": 1,
        "tool": s.tool,
        "actions": '["read"]',
        "read_actions": '["read"]',
        "risk_tier": 0,
        "approval_required": False,
        "single_use": False,
        "dpop_required": False,
        "max_token_lifetime": None,
        "audience": s.audience,
    }
    values.update(changes)
    return Registered(**values)


def spend_of(s: Seeded, now: int = NOW) -> Spend:
    return Spend(s.delegation_id, s.agent_id, now, registered(s))


_counter = iter(range(10**9))


def grant(
    s: Seeded,
    decision: str,
    *,
    reason: str | None = None,
    now: int = NOW,
    approval_id: str | None = None,
) -> GrantWrite:
    """A grant row and its entry; an issued one names a fresh jti and token digest."""
    n = next(_counter)
    issued = decision == "issued"
    row = NewGrant(
        id=f"grt_c{n}",
        created_at=now,
        decision=decision,
        reason=reason,
        agent_id=s.agent_id,
        owner_id=s.owner_id,
        delegation_id=s.delegation_id,
        tool=s.tool,
        resource="files/a",
        action="read",
        intent="tidy files",
        audience=s.audience,
        jti=f"{n:064x}" if issued else None,
        token_hash=f"{n + 1:064x}" if issued else None,
        expires_at=now + 30 if issued else None,
        cnf_jkt=None,
        single_use=False,
    )
    record: dict[str, Any] = {
        "grant_id": row.id,
        "decision": decision,
        "reason": reason,
        "agent_id": s.agent_id,
        "owner_id": s.owner_id,
        "delegation_id": s.delegation_id,
        "tool": s.tool,
        "resource": row.resource,
        "action": row.action,
        "intent": row.intent,
        "audience": s.audience,
        "jti": row.jti,
        "token_hash": row.token_hash,
        "expires_at": row.expires_at,
        "single_use": False,
    }
    if approval_id is not None:
        record["approval_id"] = approval_id
    return GrantWrite(row, ("grant", 1, now, record))


def use(name: str, expires_at: int = NOW + 60) -> SingleUse:
    return single_use("attestation", "agt_1", name, expires_at=expires_at)


def refuse_as(s: Seeded, reason: str, seen: list[NotSpent] | None = None) -> Any:
    """A ``refuse`` that records what it was shown and denies with ``reason``."""

    def refuse(not_spent: NotSpent) -> Denial:
        if seen is not None:
            seen.append(not_spent)
        return Denial(grant(s, "denied", reason=reason))

    return refuse


def refuse_request(s: Seeded, seen: list[NotRequested]) -> Any:
    def refuse(not_requested: NotRequested) -> GrantWrite:
        seen.append(not_requested)
        return grant(s, "denied", reason="approval_limit")

    return refuse


def new_approval(s: Seeded, approval_id: str = "apr_1", now: int = NOW) -> NewApproval:
    return NewApproval(
        id=approval_id,
        created_at=now,
        expires_at=now + 300,
        owner_id=s.owner_id,
        agent_id=s.agent_id,
        delegation_id=s.delegation_id,
        request=orjson.dumps(
            {
                "tool": s.tool,
                "resource": "files/a",
                "action": "read",
                "audience": s.audience,
                "intent": "tidy files",
                "lifetime": 30,
                "jkt": None,
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode(),
        reason="approval_required",
        poll_interval=5,
    )


def closed(s: Seeded, approval_id: str, reason: str, now: int = NOW) -> ClosedApproval:
    record = {
        "approval_id": approval_id,
        "decision": "denied",
        "owner_id": s.owner_id,
        "agent_id": s.agent_id,
        "delegation_id": s.delegation_id,
        "tool": s.tool,
        "resource": "files/a",
        "action": "read",
        "actor": "authority",
        "reason": reason,
    }
    return ClosedApproval(
        approval_id, reason, "authority", now, ("approval_decided", 2, now, record)
    )
