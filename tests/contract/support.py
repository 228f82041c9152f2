"""The contract suites' rows: seeded the same way on every implementation, read back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from authority.context import Services
from authority.secrets import token_hash
from authority.storage import schema
from authority.storage.introspection import IntrospectionStore
from authority.storage.memory import Tables
from authority.storage.revocation import RevocationStore

#: The tables ``Store.insert`` seeds (in memory, columns absent from a row are None).
_TABLES = ("owners", "agents", "resource_servers", "tools", "delegations", "grants")


@dataclass
class Store:
    """The ports under test and a way to seed and read the rows they share."""

    introspection: IntrospectionStore
    revocation: RevocationStore
    tables: Tables | None  # memory
    services: Services | None  # SQL

    async def insert(self, table: str, row: dict[str, Any]) -> None:
        assert table in _TABLES
        if self.tables is not None:
            columns = schema.metadata.tables[table].columns
            full = {column.name: None for column in columns}
            full.update(row)
            getattr(self.tables, table)[row["id"]] = full
            return
        assert self.services is not None
        async with self.services.engine.begin() as conn:
            await conn.execute(schema.metadata.tables[table].insert().values(**row))

    async def grant(self, grant_id: str) -> dict[str, Any]:
        if self.tables is not None:
            return dict(self.tables.grants[grant_id])
        assert self.services is not None
        async with self.services.engine.connect() as conn:
            found = (
                await conn.execute(select(schema.grants).where(schema.grants.c.id == grant_id))
            ).one()
        return dict(found._mapping)

    async def ledger(self) -> list[dict[str, Any]]:
        """The bodies of the ledger entries written, in order."""
        if self.tables is not None:
            rows = self.tables.ledger_entries
        else:
            assert self.services is not None
            async with self.services.engine.connect() as conn:
                result = await conn.execute(
                    select(schema.ledger_entries).order_by(schema.ledger_entries.c.id)
                )
                rows = [dict(r._mapping) for r in result]
        return [orjson.loads(row["body"]) for row in rows]

    async def events(self) -> list[dict[str, Any]]:
        """The revocation events recorded, in id order, without their ids."""
        if self.tables is not None:
            rows = self.tables.revocation_events
        else:
            assert self.services is not None
            async with self.services.engine.connect() as conn:
                result = await conn.execute(
                    select(schema.revocation_events).order_by(schema.revocation_events.c.id)
                )
                rows = [dict(r._mapping) for r in result]
        return [{k: v for k, v in row.items() if k != "id"} for row in rows]


NOW = 1_700_000_000


@dataclass(frozen=True, slots=True)
class Seeded:
    """One owner, agent, resource server, tool, delegation and issued grant."""

    owner_id: str = "own_1"
    agent_id: str = "agt_1"
    server_id: str = "rs_1"
    audience: str = "https://tools.example"
    tool: str = "files"
    delegation_id: str = "dlg_1"
    grant_id: str = "grt_1"
    jti: str = "jti-1"
    token: str = "the-token-bytes"

    @property
    def digest(self) -> str:
        return token_hash(self.token)


async def seed(store: Store, *, single_use: bool = False, **grant: Any) -> Seeded:
    """Every row a live grant hangs on; ``grant`` overrides columns of the grant row."""
    s = Seeded()
    stamps = {"created_at": NOW - 100, "updated_at": NOW - 100}
    await store.insert("owners", {"id": s.owner_id, "name": "owner", "status": "active", **stamps})
    await store.insert(
        "agents",
        {
            "id": s.agent_id,
            "owner_id": s.owner_id,
            "name": "agent",
            "status": "active",
            "autonomy_level": 1,
            "jwks": '{"keys": []}',
            **stamps,
        },
    )
    await store.insert(
        "resource_servers",
        {
            "id": s.server_id,
            "name": "tools",
            "audience": s.audience,
            "auth_method": "client_secret_basic",
            "secret_hash": "ab" * 32,
            "status": "active",
            **stamps,
        },
    )
    await store.insert(
        "tools",
        {
            "id": "tool_1",
            "name": s.tool,
            "resource_server_id": s.server_id,
            "actions": '["read"]',
            "read_actions": '["read"]',
            "risk_tier": 0,
            "approval_required": False,
            "single_use": single_use,
            "dpop_required": False,
            "status": "active",
            **stamps,
        },
    )
    await store.insert(
        "delegations",
        {
            "id": s.delegation_id,
            "owner_id": s.owner_id,
            "agent_id": s.agent_id,
            "intent": "tidy files",
            "scope": "[]",
            "cnf_jkt": "k" * 43,
            "expires_at": NOW + 3600,
            "calls_used": 0,
            "status": "active",
            "created_at": NOW - 100,
        },
    )
    await store.insert(
        "grants",
        {
            "id": s.grant_id,
            "created_at": NOW - 10,
            "decision": "issued",
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "delegation_id": s.delegation_id,
            "tool": s.tool,
            "audience": s.audience,
            "jti": s.jti,
            "token_hash": s.digest,
            "expires_at": NOW + 300,
            "single_use": single_use,
            **grant,
        },
    )
    return s
