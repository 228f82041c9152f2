"""Helpers for the human-in-the-loop tests: a call that needs approval, polling as CIBA
clients do, and a second authority built on custom settings."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import select

from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.settings import Settings
from authority.storage.schema import approvals, grants, ledger_entries
from tests.support import JWT_BEARER, JWT_TYPE, RS_AUDIENCE, AgentKey, World

CIBA = "urn:openid:params:grant-type:ciba"
RISKY_TOOL = "deploy.run"


async def with_risky_tool(world: World, **tool: Any) -> None:
    """A risk-3 tool (above the world's agent's autonomy 2) in the agent's delegation."""
    await world.add_tool(RISKY_TOOL, actions=["run", "read"], read=["read"], risk=3, **tool)
    await world.delegate(
        scope=[
            {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]},
            {"tool": RISKY_TOOL, "resources": ["prod/*"], "actions": ["run", "read"]},
        ]
    )


async def ask(world: World, **kwargs: Any) -> httpx.Response:
    """An exchange for the risky call (pending unless the test changed the rules)."""
    return await world.exchange(tool=RISKY_TOOL, resource="prod/web", action="run", **kwargs)


async def ask_pending(world: World, **kwargs: Any) -> str:
    response = await ask(world, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}, body
    auth_req_id: str = body["auth_req_id"]
    return auth_req_id


async def poll(
    world: World,
    auth_req_id: str,
    *,
    key: AgentKey | None = None,
    agent_id: str | None = None,
    via: str = "client_assertion",
    attestation: str | None = None,
    headers: dict[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """CIBA §10.1 token request, authenticated like the exchange."""
    attestation = attestation or (key or world.agent_key).attestation(
        agent_id or world.agent_id, world.clock.now()
    )
    data = {"grant_type": CIBA, "auth_req_id": auth_req_id}
    if via == "client_assertion":
        data.update(client_assertion_type=JWT_BEARER, client_assertion=attestation)
    else:
        data.update(actor_token=attestation, actor_token_type=JWT_TYPE)
    return await (client or world.client).post("/oauth2/token", data=data, headers=headers or {})


def error_of(response: httpx.Response) -> str:
    error: str = response.json()["error"]
    return error


async def only_approval(world: World) -> Any:
    async with world.services.engine.connect() as conn:
        [row] = (await conn.execute(select(approvals))).all()
    return row


async def approvals_page(world: World, key: str, **params: str) -> dict[str, Any]:
    response = await world.client.get("/v1/approvals", params=params, headers=world.auth(key))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def decide(
    world: World, approval_id: str, verb: str, key: str | None = None, **body: Any
) -> httpx.Response:
    return await world.client.post(
        f"/v1/approvals/{approval_id}/{verb}",
        json=body or None,
        headers=world.auth(key or world.owner_key),
    )


async def ledger(world: World, kind: str) -> list[dict[str, Any]]:
    async with world.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ledger_entries.c.body)
                .where(ledger_entries.c.kind == kind)
                .order_by(ledger_entries.c.id)
            )
        ).all()
    return [json.loads(r.body) for r in rows]


async def grant_rows(world: World) -> list[Any]:
    async with world.services.engine.connect() as conn:
        query = select(grants).order_by(grants.c.created_at, grants.c.id)
        return list((await conn.execute(query)).all())


@contextlib.asynccontextmanager
async def world_with(settings: Settings, clock: FrozenClock) -> AsyncIterator[World]:
    """A fresh authority on ``settings`` (a database of its own) and a world in it."""
    services = build_services(settings, clock=clock)
    await start(services)
    try:
        app = create_app(settings, services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8400") as c:
            yield await World(c, services, clock).setup()
    finally:
        await stop(services)


__all__ = ["RS_AUDIENCE"]
