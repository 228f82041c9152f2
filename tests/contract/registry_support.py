"""The registry ports under contract, on one set of tables per test, and the rows they share.

``registries`` (a fixture; import it into the test module) builds the owners, agents, API
keys, resource servers and tools ports as ``authority.app.build_services`` wires them for
the SQL backends, or on one ``storage.memory.Tables``; ``store`` reads back the ledger
entries and revocation events the ports wrote (``support.Store``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from authority.app import build_services
from authority.ledger.entries import Entry
from authority.settings import Settings
from authority.storage.agents import AgentRow, AgentStore
from authority.storage.api_keys import ApiKeyStore, KeyRow
from authority.storage.hot import MemoryHotState
from authority.storage.memory import Tables
from authority.storage.memory.agents import MemoryAgentStore
from authority.storage.memory.api_keys import MemoryApiKeyStore
from authority.storage.memory.introspection import MemoryIntrospectionStore
from authority.storage.memory.owners import MemoryOwnerStore
from authority.storage.memory.resource_servers import MemoryResourceServerStore
from authority.storage.memory.revocation import MemoryRevocationStore
from authority.storage.memory.tools import MemoryToolStore
from authority.storage.owners import OwnerRow, OwnerStore
from authority.storage.registry import Taken
from authority.storage.resource_servers import ResourceServerStore, ServerRow
from authority.storage.tools import ToolRow, ToolStore

from .support import NOW, Store

#: Concurrent writers of one name, or of one row.
WRITERS = 50

T = TypeVar("T")


@dataclass
class Registries:
    owners: OwnerStore
    agents: AgentStore
    api_keys: ApiKeyStore
    servers: ResourceServerStore
    tools: ToolStore
    #: The ledger and the revocation events the ports wrote.
    store: Store


@pytest.fixture
async def registries(sql_settings: Settings | None) -> AsyncIterator[Registries]:
    if sql_settings is None:
        tables = Tables()
        yield Registries(
            MemoryOwnerStore(tables),
            MemoryAgentStore(tables),
            MemoryApiKeyStore(tables),
            MemoryResourceServerStore(tables),
            MemoryToolStore(tables),
            Store(MemoryIntrospectionStore(tables), MemoryRevocationStore(tables), tables, None),
        )
        return
    services = build_services(sql_settings, hot=MemoryHotState())
    try:
        yield Registries(
            services.owner_store,
            services.agent_store,
            services.api_key_store,
            services.resource_server_store,
            services.tool_store,
            Store(services.introspection_store, services.revocation_store, None, services),
        )
    finally:
        await services.sql.close()
        await services.hot.close()
        await services.engine.dispose()


# --- rows ---------------------------------------------------------------------------------
def owner(owner_id: str = "own_1", name: str = "alice", **columns: Any) -> OwnerRow:
    values: dict[str, Any] = {
        "id": owner_id,
        "name": name,
        "email": None,
        "status": "active",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return OwnerRow(**{**values, **columns})


def agent(
    agent_id: str = "agt_1", owner_id: str = "own_1", name: str = "worker", **columns: Any
) -> AgentRow:
    values: dict[str, Any] = {
        "id": agent_id,
        "owner_id": owner_id,
        "name": name,
        "description": None,
        "status": "active",
        "status_reason": None,
        "quarantined_by": None,
        "autonomy_level": 1,
        "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1"}]},
        "created_at": NOW,
        "updated_at": NOW,
    }
    return AgentRow(**{**values, **columns})


def key(key_id: str = "key_1", role: str = "admin", **columns: Any) -> KeyRow:
    values: dict[str, Any] = {
        "id": key_id,
        "role": role,
        "owner_id": None,
        "label": "",
        "created_at": NOW,
        "revoked_at": None,
    }
    return KeyRow(**{**values, **columns})


def server(server_id: str = "rs_1", name: str = "files", **columns: Any) -> ServerRow:
    values: dict[str, Any] = {
        "id": server_id,
        "name": name,
        "audience": f"https://{name}.example",
        "auth_method": "client_secret_basic",
        "secret_hash": "ab" * 32,
        "jwks": None,
        "status": "active",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return ServerRow(**{**values, **columns})


def tool(
    tool_id: str = "tool_1", name: str = "files.read", server_id: str = "rs_1", **columns: Any
) -> ToolRow:
    values: dict[str, Any] = {
        "id": tool_id,
        "name": name,
        "description": None,
        "resource_server_id": server_id,
        "actions": ["read", "write"],
        "read_actions": ["read"],
        "risk_tier": 1,
        "approval_required": False,
        "single_use": False,
        "dpop_required": False,
        "max_token_lifetime": None,
        "status": "active",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return ToolRow(**{**values, **columns})


def changed(object_type: str, object_id: str, change: str = "created", **record: Any) -> Entry:
    """A ``registry_changed`` entry, as ``management.changes.entry`` builds them."""
    body: dict[str, Any] = {
        "object_type": object_type,
        "object_id": object_id,
        "change": change,
        "changes": {},
        "keys": None,
        "owner_id": None,
        "agent_id": None,
        "tool": None,
        "actor": "key_admin",
    }
    return ("registry_changed", 1, NOW, {**body, **record})


#: An entry its schema refuses (``MalformedEntry``): the write it comes with must not happen.
MALFORMED: Entry = ("registry_changed", 1, NOW, {"object_type": "not a registry"})


async def seed_owner(registries: Registries, owner_id: str = "own_1", name: str = "alice") -> None:
    assert not isinstance(await registries.owners.create(owner(owner_id, name)), Taken)


async def seed_server(registries: Registries, server_id: str = "rs_1", name: str = "files") -> None:
    assert not isinstance(await registries.servers.create(server(server_id, name), ()), Taken)


async def concurrently(make: Callable[[int], Awaitable[T]], count: int = WRITERS) -> list[T]:
    """``count`` calls of ``make(i)`` at once."""
    return list(await asyncio.gather(*(make(i) for i in range(count))))


def ids(rows: Iterable[Any]) -> list[str]:
    return [row.id for row in rows]
