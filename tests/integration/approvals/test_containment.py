"""Automatic containment: an agent that keeps overstepping is quarantined, on every
instance at once; repeated containments lower its autonomy; only a release lifts it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authority import containment
from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.storage.schema import agents, revocation_events
from tests.revocation_support import (
    INACTIVE,
    add_server,
    introspect,
    is_active,
    issue,
    revoke_as_agent,
    revoke_as_server,
)
from tests.support import ISSUER, AgentKey, World

from .support import ledger, world_with

THRESHOLD = 5
FORBIDDEN_TOOL = "github.repos.delete"


@pytest.fixture
async def strict(settings_factory: Any, clock: FrozenClock) -> AsyncIterator[World]:
    """A world whose agent is quarantined at the fifth violation within a minute."""
    async with world_with(settings_factory(containment_threshold=THRESHOLD), clock) as world:
        await world.add_tool(FORBIDDEN_TOOL, actions=["delete"])
        yield world


async def overstep(world: World, client: httpx.AsyncClient | None = None) -> httpx.Response:
    """Ask for a registered tool the delegation does not cover."""
    form = world.exchange_form(tool=FORBIDDEN_TOOL, resource="acme/web", action="delete")
    return await (client or world.client).post("/oauth2/token", data=form)


async def status(world: World) -> tuple[str, int, str | None]:
    async with world.services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(agents.c.status, agents.c.autonomy_level, agents.c.quarantined_by).where(
                    agents.c.id == world.agent_id
                )
            )
        ).one()
    return row.status, row.autonomy_level, row.quarantined_by


async def metrics_text(world: World, client: httpx.AsyncClient | None = None) -> str:
    response = await (client or world.client).get("/metrics", headers=world.auth(world.admin))
    assert response.status_code == 200, response.text
    return response.text


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def release(world: World) -> httpx.Response:
    return await world.client.post(
        f"/v1/agents/{world.agent_id}/release",
        json={"reason": "looked into it"},
        headers=world.auth(world.owner_key),
    )


# --- the threshold ---------------------------------------------------------------------------
async def test_an_agent_asking_outside_its_delegation_is_quarantined(strict: World) -> None:
    world = strict
    token = await issue(world)
    for _ in range(THRESHOLD - 1):
        assert (await overstep(world)).status_code == 400
    assert (await status(world))[0] == "active"
    assert await is_active(world, token)
    assert (await overstep(world)).status_code == 400
    # At once: the agent is quarantined by the authority, its live token is inactive,
    # its next exchange is refused, and the feed has the event.
    state, level, by = await status(world)
    assert (state, level, by) == ("quarantined", 2, containment.ACTOR)
    assert not await is_active(world, token)
    refused = await world.exchange()
    assert refused.status_code == 400
    assert (await ledger(world, "grant"))[-1]["reason"] == "agent_inactive"
    async with world.services.engine.connect() as conn:
        [event] = (await conn.execute(select(revocation_events))).all()
    assert (event.kind, event.agent_id) == ("agent", world.agent_id)
    [quarantined] = await ledger(world, "agent_quarantined")
    assert quarantined["actor"] == containment.ACTOR
    assert "5 violations" in quarantined["reason"] and "tool_not_delegated" in quarantined["reason"]
    [contained] = await ledger(world, "agent_contained")
    assert (contained["violations"], contained["threshold"], contained["trigger"]) == (
        5,
        THRESHOLD,
        "tool_not_delegated",
    )
    assert contained["containments"] == 1 and contained["autonomy_level"] == 2
    text = await metrics_text(world)
    assert sample(text, "authority_time_to_contain_seconds_count") == 1
    assert sample(text, "authority_containments_total") == 1
    # Only an explicit release lifts it; time does not.
    world.clock.advance(600)
    assert (await status(world))[0] == "quarantined"
    assert (await release(world)).status_code == 200
    assert (await world.exchange()).status_code == 200


async def test_quarantine_takes_effect_on_a_second_instance(
    strict: World, backend: str, settings_factory: Any
) -> None:
    """Two instances over one PostgreSQL and one Redis: violations on both add up, and
    the token issued by one is inactive at the other the moment the threshold is crossed."""
    if backend != "postgres":
        pytest.skip("two instances share PostgreSQL and Redis")
    world = strict
    settings = world.services.settings
    second = build_services(settings, clock=world.clock)
    await start(second)
    try:
        app = create_app(settings, services=second)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as b:
            token = await issue(world)
            assert await is_active(world, token, client=b)
            for n in range(THRESHOLD):
                assert (await overstep(world, b if n % 2 else None)).status_code == 400
            assert not await is_active(world, token, client=b)
            refused = await b.post("/oauth2/token", data=world.exchange_form())
            assert refused.status_code == 400
            # Time to contain, as measured by whichever instance crossed the threshold.
            counts = [
                sample(await metrics_text(world, c), "authority_time_to_contain_seconds_count")
                for c in (world.client, b)
            ]
            assert sorted(counts) == [0, 1]
            total = 0.0
            for c in (world.client, b):
                text = await metrics_text(world, c)
                total += sample(text, "authority_time_to_contain_seconds_sum")
            print(f"time to contain: {total * 1000:.1f} ms")
    finally:
        await stop(second)


# --- only what provably comes from the agent counts ----------------------------------------------
async def test_forged_attestations_naming_the_agent_never_count(strict: World) -> None:
    world = strict
    impostor = AgentKey()
    for _ in range(THRESHOLD * 2):
        forged = impostor.attestation(world.agent_id, world.clock.now())
        form = world.exchange_form(
            tool=FORBIDDEN_TOOL, resource="acme/web", action="delete", attestation=forged
        )
        assert (await world.client.post("/oauth2/token", data=form)).status_code == 400
    assert (await status(world))[0] == "active"
    assert await containment.violations(world.services, world.agent_id) == 0


async def test_a_replayed_attestation_counts_once(strict: World) -> None:
    """A captured attestation replayed by someone else cannot run the count up."""
    world = strict
    captured = world.agent_key.attestation(world.agent_id, world.clock.now())
    for _ in range(THRESHOLD * 2):
        form = world.exchange_form(
            tool=FORBIDDEN_TOOL, resource="acme/web", action="delete", attestation=captured
        )
        assert (await world.client.post("/oauth2/token", data=form)).status_code == 400
    assert (await status(world))[0] == "active"
    assert await containment.violations(world.services, world.agent_id) == 1


async def test_limits_doing_their_job_are_not_violations(strict: World) -> None:
    world = strict
    await world.delegate(rate_per_minute=1)
    codes = [(await world.exchange()).status_code for _ in range(THRESHOLD * 2)]
    assert codes.count(429) == THRESHOLD * 2 - 1
    assert (await status(world))[0] == "active"


async def test_the_window_rolls(strict: World) -> None:
    world = strict
    for _ in range(THRESHOLD - 1):
        await overstep(world)
    world.clock.advance(2 * world.services.settings.containment_window)
    for _ in range(THRESHOLD - 1):
        await overstep(world)
    assert (await status(world))[0] == "active"


async def test_containment_can_be_turned_off(settings_factory: Any, clock: FrozenClock) -> None:
    async with world_with(settings_factory(containment_threshold=0), clock) as world:
        await world.add_tool(FORBIDDEN_TOOL, actions=["delete"])
        for _ in range(20):
            await overstep(world)
        assert (await status(world))[0] == "active"


# --- its tokens, misused where they are presented --------------------------------------------
async def test_tokens_presented_at_the_wrong_server_count_once_each(strict: World) -> None:
    world = strict
    elsewhere = await add_server(world, "https://elsewhere.example.test")
    token = await issue(world)
    for _ in range(THRESHOLD * 2):  # one token, asked about again and again
        response = await introspect(world, token, elsewhere)
        assert response.json() == {"active": False}
    assert (await status(world))[0] == "active"
    for _ in range(THRESHOLD - 1):  # four more tokens: five misused tokens in all
        await introspect(world, await issue(world), elsewhere)
    assert (await status(world))[0] == "quarantined"
    [contained] = await ledger(world, "agent_contained")
    assert contained["trigger"] == containment.WRONG_AUDIENCE


async def test_expired_tokens_and_garbage_are_not_the_agents_doing(strict: World) -> None:
    world = strict
    tokens = [await issue(world) for _ in range(THRESHOLD)]
    world.clock.advance(3600)
    for token in tokens:
        assert not await is_active(world, token)
    for _ in range(THRESHOLD):
        await introspect(world, "not-a-token")
    assert (await status(world))[0] == "active"


# --- what a resource server does with its own tokens never counts ------------------------------
SINGLE_USE_TOOL = "vault.secrets.read"


async def with_single_use_tool(world: World) -> None:
    await world.add_tool(SINGLE_USE_TOOL, actions=["read"], read=["read"], single_use=True)
    await world.delegate(
        scope=[
            {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]},
            {"tool": SINGLE_USE_TOOL, "resources": ["prod/*"], "actions": ["read"]},
        ]
    )


async def issue_single_use(world: World) -> str:
    return await issue(world, tool=SINGLE_USE_TOOL, resource="prod/db", action="read")


async def assert_never_counted(world: World) -> None:
    assert (await status(world))[0] == "active"
    assert await containment.violations(world.services, world.agent_id) == 0
    assert await ledger(world, "agent_contained") == []


async def test_a_resource_server_revoking_then_introspecting_never_counts(strict: World) -> None:
    """RFC 7009 lets a resource server revoke the tokens it is sent; asking about them
    afterwards is its own doing, however many calls it revokes."""
    world = strict
    for _ in range(THRESHOLD * 2):
        token = await issue(world)
        assert (await revoke_as_server(world, token)).status_code == 200
        for _ in range(2):
            assert (await introspect(world, token)).content == INACTIVE
    await assert_never_counted(world)
    assert (await world.exchange()).status_code == 200


async def test_the_agent_revoking_its_own_tokens_never_counts(strict: World) -> None:
    world = strict
    for _ in range(THRESHOLD * 2):
        token = await issue(world)
        assert (await revoke_as_agent(world, token)).status_code == 200
        assert (await introspect(world, token)).content == INACTIVE
    await assert_never_counted(world)


async def test_a_single_use_token_asked_about_again_by_its_server_never_counts(
    strict: World,
) -> None:
    """An honest retry: the server introspects a consumed token again."""
    world = strict
    await with_single_use_tool(world)
    for _ in range(THRESHOLD * 2):
        token = await issue_single_use(world)
        assert await is_active(world, token) is True  # consumed here
        for _ in range(2):
            assert (await introspect(world, token)).content == INACTIVE
    await assert_never_counted(world)


@pytest.mark.parametrize("stop", ["revoke_delegation", "retire_tool"])
async def test_tokens_stopped_by_the_owner_or_an_admin_never_count(
    strict: World, stop: str
) -> None:
    world = strict
    tokens = [await issue(world) for _ in range(THRESHOLD * 2)]
    if stop == "revoke_delegation":
        await world.post(f"/v1/delegations/{world.delegation_id}/revoke", world.owner_key, {})
    else:
        listed = await world.client.get("/v1/tools", headers=world.auth(world.admin))
        [tool] = [t for t in listed.json()["items"] if t["name"] == "github.issues.create"]
        retired = await world.client.delete(
            f"/v1/tools/{tool['id']}", headers=world.auth(world.admin)
        )
        assert retired.status_code == 200, retired.text
    for token in tokens:
        assert (await introspect(world, token)).content == INACTIVE
    await assert_never_counted(world)


# --- ... while the agent's own misuse still does ------------------------------------------------
async def test_revoked_or_consumed_tokens_sent_to_the_wrong_server_still_count(
    strict: World,
) -> None:
    """Revocation or consumption by the right server does not excuse sending a token to
    another one: those are the agent's doing and quarantine it."""
    world = strict
    await with_single_use_tool(world)
    elsewhere = await add_server(world, "https://elsewhere.example.test")
    for n in range(THRESHOLD):
        assert (await status(world))[0] == "active"
        if n % 2:
            token = await issue(world)
            assert (await revoke_as_server(world, token)).status_code == 200
        else:
            token = await issue_single_use(world)
            assert await is_active(world, token) is True
        assert (await introspect(world, token, elsewhere)).content == INACTIVE
    assert (await status(world))[0] == "quarantined"
    [contained] = await ledger(world, "agent_contained")
    assert (contained["violations"], contained["trigger"]) == (
        THRESHOLD,
        containment.WRONG_AUDIENCE,
    )


async def test_ordinary_calls_around_misuse_add_nothing(strict: World) -> None:
    """A resource server revoking and re-asking about every call it serves adds nothing
    to the count, so only the misused tokens reach the threshold, and a repeat still
    lowers the autonomy level."""
    world = strict
    elsewhere = await add_server(world, "https://elsewhere.example.test")
    for containments, level in ((1, 2), (2, 1)):
        for _ in range(THRESHOLD - 1):
            served = await issue(world)
            assert await is_active(world, served) is True
            assert (await revoke_as_server(world, served)).status_code == 200
            assert (await introspect(world, served)).content == INACTIVE
            await introspect(world, await issue(world), elsewhere)
        assert (await status(world))[0] == "active"
        assert await containment.violations(world.services, world.agent_id) == THRESHOLD - 1
        await introspect(world, await issue(world), elsewhere)
        assert (await status(world))[:2] == ("quarantined", level)
        assert len(await ledger(world, "agent_contained")) == containments
        assert (await release(world)).status_code == 200


# --- repeated containment lowers autonomy ------------------------------------------------------
async def test_a_second_containment_lowers_the_autonomy_level(strict: World) -> None:
    world = strict
    for _ in range(THRESHOLD):
        await overstep(world)
    assert (await status(world))[:2] == ("quarantined", 2)
    assert await ledger(world, "autonomy_changed") == []
    assert (await release(world)).status_code == 200
    # Released: the count starts again from zero.
    assert await containment.violations(world.services, world.agent_id) == 0
    for _ in range(THRESHOLD):
        await overstep(world)
    assert (await status(world))[:2] == ("quarantined", 1)
    [changed] = await ledger(world, "autonomy_changed")
    assert (changed["previous_level"], changed["level"], changed["actor"]) == (
        2,
        1,
        containment.ACTOR,
    )
    assert changed["reason"].startswith("contained 2 times")
    assert [e["containments"] for e in await ledger(world, "agent_contained")] == [1, 2]


async def test_the_owner_is_notified(strict: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from authority.approvals import webhooks

    sent: list[tuple[str, str, dict[str, Any]]] = []

    def capture(services: Any, owner_id: str, kind: str, data: dict[str, Any]) -> bool:
        sent.append((owner_id, kind, data))
        return True

    monkeypatch.setattr(webhooks, "notify", capture)
    world = strict
    for _ in range(THRESHOLD):
        await overstep(world)
    [(owner_id, kind, data)] = sent
    assert (owner_id, kind) == (world.owner_id, "agent.quarantined")
    assert (data["agent_id"], data["violations"], data["trigger"]) == (
        world.agent_id,
        THRESHOLD,
        "tool_not_delegated",
    )
