"""Trust domains, workload agents and their exchanges, made over HTTP as users make them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from authority.federation.model import Preset
from authority.storage.schema import ledger_entries
from tests.federation_issuers import AUDIENCE, TestIssuer
from tests.support import (
    JWT_BEARER,
    JWT_TYPE,
    RS_AUDIENCE,
    TOKEN_EXCHANGE,
    AgentKey,
    World,
    tool_call,
)


def domain_body(issuer: TestIssuer, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"{issuer.name}-{uuid.uuid4().hex[:6]}",
        "preset": issuer.preset.value,
        "issuer": issuer.issuer,
        "audience": AUDIENCE,
    }
    if issuer.preset is Preset.SPIFFE:
        body.update(key_source="spiffe_bundle", key_location=issuer.url + "/bundle")
    else:
        body.update(
            key_source="discovery", key_location=issuer.url + "/.well-known/openid-configuration"
        )
    return {**body, **extra}


async def add_domain(world: World, issuer: TestIssuer, **extra: Any) -> str:
    created = await world.post("/v1/trust-domains", world.admin, domain_body(issuer, **extra))
    domain_id: str = created["id"]
    return domain_id


async def workload_agent(
    world: World, rules: list[dict[str, Any]], *, key: AgentKey | None = None
) -> tuple[str, str]:
    """An agent registered with ``rules`` (and ``key``: then both are required), and the
    credential of a delegation to it."""
    body: dict[str, Any] = {
        "name": f"wl-{uuid.uuid4().hex[:8]}",
        "autonomy_level": 2,
        "identity_rules": rules,
    }
    if key is not None:
        body.update(jwks=key.jwks(), require_key_and_workload=True)
    agent = await world.post("/v1/agents", world.owner_key, body)
    delegation = {
        "agent_id": agent["id"],
        "intent": "deploy acme/web",
        "scope": [{"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]}],
        "expires_in": 3600,
    }
    created = await world.post("/v1/delegations", world.owner_key, delegation)
    return agent["id"], created["credential"]


async def exchange(
    world: World,
    agent_id: str,
    credential: str,
    platform_token: str | None,
    *,
    attestation: str | None = None,
    tool: str = "github.issues.create",
    action: str = "create",
) -> httpx.Response:
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": credential,
        "subject_token_type": JWT_TYPE,
        "resource": RS_AUDIENCE,
        "authorization_details": tool_call(tool, "acme/web", action),
        "client_id": agent_id,
    }
    if platform_token is not None:
        form.update(actor_token=platform_token, actor_token_type=JWT_TYPE)
    if attestation is not None:
        form.update(client_assertion=attestation, client_assertion_type=JWT_BEARER)
    return await world.client.post("/oauth2/token", data=form)


def now_of(world: World) -> int:
    return int(world.clock.now())


async def entries(world: World, kind: str) -> list[dict[str, Any]]:
    async with world.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ledger_entries.c.body)
                .where(ledger_entries.c.kind == kind)
                .order_by(ledger_entries.c.id)
            )
        ).all()
    return [json.loads(row.body) for row in rows]


def refused(response: httpx.Response, reason_text: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert reason_text in response.json()["error_description"], response.text
