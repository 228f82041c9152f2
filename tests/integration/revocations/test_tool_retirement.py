"""Retiring a tool stops its tokens everywhere: at introspection, and through the feed at
resource servers that verify tokens locally."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from authority.revocations import events
from authority.sdk.feed import MalformedEvent, RevocationEvent
from authority.sdk.revocations import RevocationList
from authority.sdk.verifier import VerifiedToken
from authority.storage.events import RevocationEvent as ServerEvent
from tests.integration.grants.test_spend_recheck import retire_tool
from tests.revocation_support import add_server, is_active, issue
from tests.support import World


def _verified(token: str) -> VerifiedToken:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    [detail] = claims["authorization_details"]
    return VerifiedToken(
        raw=token,
        claims=claims,
        jti=claims["jti"],
        owner_id=claims["sub"],
        agent_id=claims["act"]["sub"],
        delegation_id=claims["delegation_id"],
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        tool=detail["tool"],
        resource=detail["resource"],
        action=detail["action"],
        dpop_jkt=None,
    )


async def _feed_for(world: World, server_id: str) -> list[ServerEvent]:
    """What a resource server that starts now is sent: every live event concerning it."""
    services = world.services
    batch = await events.read_after(
        services.event_reader, 0, 10_000, settings=services.settings, live_at=services.now()
    )
    return [event for event in batch if event.concerns(server_id)]


def _local_list(feed: list[ServerEvent], now: int) -> RevocationList:
    revoked = RevocationList()
    for event in feed:
        # Through the SDK's own parser, exactly as the feed's JSON arrives.
        revoked.apply(RevocationEvent.from_value(event.as_json()), now)
    return revoked


async def test_retiring_a_tool_stops_its_tokens_for_local_verifiers_too(world: World) -> None:
    token = await issue(world)
    await retire_tool(world)
    assert not await is_active(world, token)
    feed = await _feed_for(world, world.server_id)
    assert [(e.kind, e.tool) for e in feed] == [("tool", "github.issues.create")]
    assert _local_list(feed, world.services.now()).revokes(_verified(token))


async def test_the_tool_event_goes_only_to_the_tools_server(world: World) -> None:
    other = await add_server(world, "https://elsewhere.example.test")
    await retire_tool(world)
    assert await _feed_for(world, other.id) == []


async def test_a_retired_tool_revokes_only_its_own_tokens(world: World) -> None:
    await world.add_tool("github.issues.read", actions=["read"], read=["read"])
    await world.delegate(
        scope=[
            {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]},
            {"tool": "github.issues.read", "resources": ["acme/*"], "actions": ["read"]},
        ]
    )
    exchanged = await world.exchange(tool="github.issues.read", action="read")
    assert exchanged.status_code == 200, exchanged.text
    kept = exchanged.json()["access_token"]
    await retire_tool(world)
    revoked = _local_list(await _feed_for(world, world.server_id), world.services.now())
    assert not revoked.revokes(_verified(kept))


@pytest.mark.parametrize("tool", [None, "", 7, "x" * 201])
def test_a_tool_event_without_a_good_tool_name_is_malformed(tool: object) -> None:
    value: dict[str, Any] = {"id": 1, "kind": "tool", "time": 1, "expires_at": 2}
    if tool is not None:
        value["tool"] = tool
    with pytest.raises(MalformedEvent):
        RevocationEvent.from_value(value)
