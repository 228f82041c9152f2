"""Fixtures for the management API: keys of each role, owners, agents' keys, table dumps.

The agents' public keys are made by ``tests.unit.management.keys`` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authority.context import Services
from authority.management import api_keys
from authority.storage.schema import metadata
from tests.unit.management.keys import ed25519_jwk, p256_jwk, rsa_jwk

__all__ = ["Keys", "Owner", "bearer", "dump", "ed25519_jwk", "jwks", "keys", "p256_jwk", "rsa_jwk"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys) or [ed25519_jwk()]}


async def dump(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: compared before and after a request.

    The ledger sequencer is drained first, so that its background round (sequencing the
    keyring's own entries) is not mistaken for a change a request made.
    """
    if services.sequencer is not None:
        await services.sequencer.run_once()
    result: dict[str, list[tuple[Any, ...]]] = {}
    async with services.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            result[table.name] = [tuple(row) for row in rows]
    return result


@dataclass
class Owner:
    id: str
    key: str
    headers: dict[str, str]


@dataclass
class Keys:
    """An admin and an auditor key, and a factory for owners with their own keys."""

    client: httpx.AsyncClient
    admin: dict[str, str]
    auditor: dict[str, str]
    _count: int = 0

    async def owner(self, name: str | None = None) -> Owner:
        self._count += 1
        response = await self.client.post(
            "/v1/owners", json={"name": name or f"owner {self._count}"}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        owner_id = response.json()["id"]
        response = await self.client.post(
            f"/v1/owners/{owner_id}/api-keys", json={"label": "test"}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        key = response.json()["api_key"]
        return Owner(owner_id, key, bearer(key))

    async def agent(self, owner: Owner, name: str = "agent", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "jwks": jwks(), **fields}
        response = await self.client.post("/v1/agents", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        agent: dict[str, Any] = response.json()
        return agent

    async def server(self, name: str = "github", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "audience": f"https://{name}.example/api", **fields}
        response = await self.client.post("/v1/resource-servers", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        server: dict[str, Any] = response.json()
        return server

    async def tool(self, server_id: str, name: str = "github.issues.create", **fields: Any) -> Any:
        body = {
            "name": name,
            "resource_server_id": server_id,
            "actions": ["create", "read"],
            "read_actions": ["read"],
            "risk_tier": 1,
            **fields,
        }
        response = await self.client.post("/v1/tools", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
async def keys(services: Services, client: httpx.AsyncClient) -> Keys:
    admin = await api_keys.bootstrap(services)
    auditor = await api_keys.issue_operator_key(services, "auditor", "test auditor")
    return Keys(client, bearer(admin.secret), bearer(auditor.secret))
