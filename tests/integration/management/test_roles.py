"""The domain enforces roles itself: the HTTP layer's early 403 is not the only guard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from authority.context import Services
from authority.errors import InsufficientScope, InvalidToken, NotFound
from authority.management import agents, api_keys, owners, paging, resource_servers, tools
from authority.management.auth import Principal, authenticate, principal_for_key
from authority.management.inputs import parse
from authority.storage.schema import owners as owners_table

from .conftest import Keys, jwks

AUDITOR = Principal(key_id="key_auditor", role="auditor", owner_id=None)
PAGE = paging.PageRequest(limit=10, after=None)


def owner_principal(owner_id: str) -> Principal:
    return Principal(key_id="key_owner", role="owner", owner_id=owner_id)


async def test_auditor_writes_are_refused_by_the_domain(services: Services, keys: Keys) -> None:
    owner = await keys.owner()
    agent = await keys.agent(owner)
    server = await keys.server()
    tool = await keys.tool(server["id"])
    writes: list[Callable[[], Awaitable[Any]]] = [
        lambda: owners.create(services, AUDITOR, owners.OwnerCreate(name="x")),
        lambda: owners.update_owner(services, AUDITOR, owner.id, owners.OwnerUpdate(name="x")),
        lambda: owners.retire(services, AUDITOR, owner.id),
        lambda: api_keys.create(services, AUDITOR, api_keys.KeyCreate(role="admin")),
        lambda: api_keys.create_for_owner(services, AUDITOR, owner.id, api_keys.OwnerKeyCreate()),
        lambda: api_keys.revoke(services, AUDITOR, "key_x"),
        lambda: api_keys.revoke(services, AUDITOR, "key_x", owner.id),
        lambda: agents.create(
            services,
            AUDITOR,
            parse(agents.AgentCreate, {"name": "x", "owner_id": owner.id, "jwks": jwks()}),
        ),
        lambda: agents.update_agent(services, AUDITOR, agent["id"], agents.AgentUpdate(name="x")),
        lambda: agents.retire(services, AUDITOR, agent["id"]),
        lambda: tools.update_tool(services, AUDITOR, tool["id"], tools.ToolUpdate(risk_tier=0)),
        lambda: tools.retire(services, AUDITOR, tool["id"]),
        lambda: resource_servers.rotate_secret(services, AUDITOR, server["id"]),
        lambda: resource_servers.retire(services, AUDITOR, server["id"]),
    ]
    for write in writes:
        with pytest.raises(InsufficientScope):
            await write()


async def test_owner_confinement_is_enforced_by_the_domain(services: Services, keys: Keys) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    bobs = await keys.agent(bob)
    mallory = owner_principal(alice.id)
    hidden: list[Callable[[], Awaitable[Any]]] = [
        lambda: agents.get(services, mallory, bobs["id"]),
        lambda: agents.update_agent(services, mallory, bobs["id"], agents.AgentUpdate(name="x")),
        lambda: agents.retire(services, mallory, bobs["id"]),
        lambda: owners.get(services, mallory, bob.id),
        lambda: api_keys.list_keys(services, mallory, PAGE, bob.id),
    ]
    for call in hidden:
        with pytest.raises(NotFound):
            await call()
    assert (await agents.list_agents(services, mallory, PAGE)).items == []
    refused: list[Callable[[], Awaitable[Any]]] = [
        lambda: owners.list_owners(services, mallory, PAGE),
        lambda: api_keys.list_keys(services, mallory, PAGE),
        lambda: tools.retire(services, mallory, "tool_x"),
    ]
    for call in refused:
        with pytest.raises(InsufficientScope):
            await call()


async def test_a_retired_owners_key_fails_even_if_not_revoked(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    owner = await keys.owner()
    async with services.engine.begin() as conn:
        await conn.execute(
            update(owners_table).where(owners_table.c.id == owner.id).values(status="retired")
        )
    assert (await client.get("/v1/me", headers=owner.headers)).status_code == 401
    with pytest.raises(InvalidToken):
        await principal_for_key(services, owner.key)


class FakeRequest:
    """``authenticate`` needs only headers and the app's services."""

    def __init__(self, services: Services, headers: dict[str, str]) -> None:
        self.headers = headers

        class State:
            pass

        class App:
            state = State()

        App.state.services = services  # type: ignore[attr-defined]
        self.app = App()


async def test_authenticate_for_other_layers(services: Services, keys: Keys) -> None:
    owner = await keys.owner()
    principal = await authenticate(FakeRequest(services, {"authorization": f"Bearer {owner.key}"}))
    assert principal.role == "owner"
    assert principal.owner_id == owner.id
    with pytest.raises(InvalidToken):
        await authenticate(FakeRequest(services, {}))
