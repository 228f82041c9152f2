"""Behaviour that earns and loses trust: an agent's baseline steps up calls far outside
it to the owner, the owner's approval lets them through, and a written rule proposes
promotions that only the owner's acceptance applies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authority import behaviour, containment
from authority.cli import main
from authority.clock import FrozenClock
from authority.storage.schema import agents, grants
from tests.revocation_support import serving
from tests.support import World

from .support import decide, ledger, poll, world_with

TOOL = "github.issues.create"
NEW_TOOL = "github.issues.comment"
LEARNING = 10
FLOOR = 5


@pytest.fixture
async def watched(settings_factory: Any, clock: FrozenClock) -> AsyncIterator[World]:
    """Past its learning phase after 10 calls (no minimum of days); bursts above 5 a minute
    and 10 times its usual rate step up; the default containment threshold."""
    settings = settings_factory(
        behaviour_learning_calls=LEARNING,
        behaviour_learning_days=0,
        behaviour_burst_factor=10,
        behaviour_burst_floor=FLOOR,
        approval_poll_interval=1,
    )
    async with world_with(settings, clock) as world:
        await world.add_tool(NEW_TOOL, actions=["create"])
        yield world


async def both_tools(world: World) -> None:
    await world.delegate(
        scope=[
            {"tool": TOOL, "resources": ["acme/*"], "actions": ["create"]},
            {"tool": NEW_TOOL, "resources": ["acme/*"], "actions": ["create"]},
        ]
    )


async def steady(world: World, minutes: int, per_minute: int = 1) -> None:
    """``per_minute`` issued calls of TOOL a minute, folded as the worker would fold them."""
    for _ in range(minutes):
        for _ in range(per_minute):
            answer = (await world.exchange()).json()
            assert "access_token" in answer, answer
        world.clock.advance(60)
        await behaviour.refresh(world.services)


async def pending_reasons(world: World) -> list[str]:
    async with world.services.engine.connect() as conn:
        rows = await conn.execute(select(grants.c.reason).where(grants.c.decision == "pending"))
        return [str(r.reason) for r in rows]


async def test_a_steady_agent_is_never_stepped_up(watched: World) -> None:
    await steady(watched, minutes=30, per_minute=2)
    assert await pending_reasons(watched) == []
    assert await ledger(watched, "behaviour_step_up") == []


async def test_a_new_tool_during_learning_is_learned(watched: World) -> None:
    await both_tools(watched)
    await steady(watched, minutes=2)
    answer = (await watched.exchange(tool=NEW_TOOL)).json()
    assert "access_token" in answer, answer
    await steady(watched, minutes=LEARNING)
    assert "access_token" in (await watched.exchange(tool=NEW_TOOL)).json()
    assert await pending_reasons(watched) == []


async def test_a_new_tool_after_learning_asks_and_approval_lets_it_through(
    watched: World,
) -> None:
    world = watched
    await steady(world, minutes=LEARNING + 2)
    await both_tools(world)
    asked = await world.exchange(tool=NEW_TOOL)
    body = asked.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}, body
    assert await pending_reasons(world) == ["behaviour_step_up"]
    # The owner sees why, in the approval request and in the agent's baseline.
    page = await world.client.get("/v1/approvals", headers=world.auth(world.owner_key))
    [approval] = page.json()["items"]
    assert approval["reason"] == "behaviour_step_up"
    explanation = approval["explanation"]
    assert explanation == f"first call to tool {NEW_TOOL} after {LEARNING + 2} calls to 1 tool"
    [entry] = await ledger(world, "behaviour_step_up")
    assert (entry["approval_id"], entry["deviation"], entry["tool"]) == (
        approval["id"],
        "new_tool",
        NEW_TOOL,
    )
    assert entry["explanation"] == explanation
    seen = await world.client.get(
        f"/v1/agents/{world.agent_id}/baseline", headers=world.auth(world.owner_key)
    )
    assert seen.status_code == 200, seen.text
    baseline = seen.json()
    assert baseline["tools"] == [TOOL] and baseline["learning"] is False
    assert baseline["step_ups"][0]["explanation"] == explanation
    # Approved, the call goes through; the tool is part of the baseline from then on.
    assert (await decide(world, approval["id"], "approve")).status_code == 200
    world.clock.advance(1)
    issued = await poll(world, body["auth_req_id"])
    assert "access_token" in issued.json(), issued.text
    again = await world.exchange(tool=NEW_TOOL)
    assert "access_token" in again.json(), again.text
    assert await pending_reasons(world) == ["behaviour_step_up"]


async def test_a_burst_ten_times_the_usual_rate_asks(watched: World) -> None:
    world = watched
    await steady(world, minutes=LEARNING + 2)  # one a minute
    answers = [(await world.exchange()).json() for _ in range(12)]
    # Ten in the minute are within 10x the usual one; the eleventh is beyond (and > 5).
    assert all("access_token" in a for a in answers[:10]), answers[:10]
    assert all(set(a) == {"auth_req_id", "expires_in", "interval"} for a in answers[10:])
    [first, _] = await ledger(world, "behaviour_step_up")
    assert first["deviation"] == "burst"
    assert first["explanation"].startswith("11 calls this minute, against a usual 1.0 per minute")
    # The next minute is an ordinary one again.
    world.clock.advance(60)
    assert "access_token" in (await world.exchange()).json()


async def test_step_ups_can_be_turned_off(settings_factory: Any, clock: FrozenClock) -> None:
    settings = settings_factory(
        behaviour_learning_calls=1, behaviour_learning_days=0, behaviour_enabled=False
    )
    async with world_with(settings, clock) as world:
        await world.add_tool(NEW_TOOL, actions=["create"])
        await steady(world, minutes=3)
        await both_tools(world)
        assert "access_token" in (await world.exchange(tool=NEW_TOOL)).json()


async def test_repeated_deviations_are_contained(settings_factory: Any, clock: FrozenClock) -> None:
    settings = settings_factory(
        behaviour_learning_calls=3, behaviour_learning_days=0, containment_threshold=3
    )
    async with world_with(settings, clock) as world:
        await world.add_tool(NEW_TOOL, actions=["create"])
        await steady(world, minutes=4)
        await both_tools(world)
        for _ in range(3):
            assert "auth_req_id" in (await world.exchange(tool=NEW_TOOL)).json()
        [contained] = await ledger(world, "agent_contained")
        assert contained["trigger"] == "behaviour_deviation"
        assert await level_and_status(world) == (2, "quarantined")


async def level_and_status(world: World) -> tuple[int, str]:
    async with world.services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(agents.c.autonomy_level, agents.c.status).where(
                    agents.c.id == world.agent_id
                )
            )
        ).one()
    return int(row.autonomy_level), str(row.status)


async def promotions(world: World, key: str | None = None) -> httpx.Response:
    return await world.client.get(
        f"/v1/agents/{world.agent_id}/promotions", headers=world.auth(key or world.owner_key)
    )


@pytest.fixture
async def earning(settings_factory: Any, clock: FrozenClock) -> AsyncIterator[World]:
    settings = settings_factory(
        promotion_rule="days >= 1 and calls >= 5 and violations == 0",
        promotion_max_level=3,
    )
    async with world_with(settings, clock) as world:
        yield world


async def test_promotion_follows_the_rule_and_waits_for_the_owner(earning: World) -> None:
    world = earning
    await steady(world, minutes=6)
    # Calls enough, but not a day of them yet: nothing is proposed.
    assert (await promotions(world)).json()["items"] == []
    world.clock.advance(86400)
    await world.delegate()  # the first delegation has expired meanwhile
    await steady(world, minutes=1)
    [proposal] = (await promotions(world)).json()["items"]
    assert (proposal["status"], proposal["from_level"], proposal["to_level"]) == (
        "proposed",
        2,
        3,
    )
    assert proposal["record"]["calls"] == 7 and proposal["record"]["violations"] == 0
    [proposed] = await ledger(world, "promotion_proposed")
    assert proposed["proposal_id"] == proposal["id"] and proposed["days"] == 1
    # Proposed is not applied, however often the rule is weighed again.
    await steady(world, minutes=2)
    assert await level_and_status(world) == (2, "active")
    assert len((await promotions(world)).json()["items"]) == 1
    accepted = await world.client.post(
        f"/v1/agents/{world.agent_id}/promotions/{proposal['id']}/accept",
        headers=world.auth(world.owner_key),
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert await level_and_status(world) == (3, "active")
    [entry] = await ledger(world, "promotion_accepted")
    assert (entry["proposal_id"], entry["from_level"], entry["to_level"]) == (proposal["id"], 2, 3)
    [changed] = await ledger(world, "autonomy_changed")
    assert (changed["previous_level"], changed["level"]) == (2, 3)
    # Accepted once: a second acceptance is a conflict, and nothing more is proposed.
    again = await world.client.post(
        f"/v1/agents/{world.agent_id}/promotions/{proposal['id']}/accept",
        headers=world.auth(world.owner_key),
    )
    assert again.status_code == 409
    await steady(world, minutes=2)
    assert len((await promotions(world)).json()["items"]) == 1


async def test_a_violation_holds_the_promotion_back(earning: World) -> None:
    world = earning
    await steady(world, minutes=6)
    denied = await world.exchange(resource="other/repo")
    assert denied.json()["error"] == "invalid_scope"
    world.clock.advance(86400)
    await world.delegate()
    await steady(world, minutes=1)
    assert (await promotions(world)).json()["items"] == []


async def test_only_the_agents_owner_sees_and_accepts(earning: World) -> None:
    world = earning
    owner = await world.post("/v1/owners", world.admin, {"name": "other"})
    other = (await world.post(f"/v1/owners/{owner['id']}/api-keys", world.admin, {}))["api_key"]
    assert (await promotions(world, other)).status_code == 404
    seen = await world.client.get(
        f"/v1/agents/{world.agent_id}/baseline", headers=world.auth(other)
    )
    assert seen.status_code == 404
    refused = await world.client.post(
        f"/v1/agents/{world.agent_id}/promotions/prm_x/accept", headers=world.auth(other)
    )
    assert refused.status_code == 404


async def test_the_cli_shows_the_baseline_and_accepts_a_promotion(
    earning: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = earning
    world.clock.advance(90 - world.clock.now() % 60)  # half way through a minute
    await world.delegate()
    await steady(world, minutes=6)
    world.clock.advance(86400)
    await world.delegate()
    await steady(world, minutes=1)
    [proposal] = (await promotions(world)).json()["items"]
    key_file = tmp_path / "owner.key"
    key_file.write_text(world.owner_key + "\n")
    async with serving(world.client._transport.app) as url:  # type: ignore[attr-defined]
        common = ["--url", url, "--api-key-file", str(key_file)]
        assert await run("agents", "baseline", world.agent_id, *common) == 0
        out = capsys.readouterr().out
        # Calls half way through their minutes are folded at the next round; the default
        # learning phase holds.
        assert f"{world.agent_id}: 7 calls over 7 active minutes (usual 1.0 per minute), " in out
        assert f"learning; tools: {TOOL}\n" in out
        assert f"{TOOL}\tacme/web\tcreate\t7\t" in out
        assert await run("agents", "promotions", world.agent_id, *common) == 0
        assert capsys.readouterr().out.startswith(f"{proposal['id']}\tproposed\t2\t3\t")
        assert await level_and_status(world) == (2, "active")
        accept = ["--accept", proposal["id"]]
        assert await run("agents", "promotions", world.agent_id, *accept, *common) == 0
        assert capsys.readouterr().out.startswith(f"{proposal['id']}\taccepted\t2\t3\t")
    assert await level_and_status(world) == (3, "active")


async def run(*argv: str) -> int:
    # The CLI runs its own client; off the event loop that serves the authority.
    return await asyncio.to_thread(main, list(argv))


async def test_baselines_not_loaded_answer_503_and_issue_nothing(watched: World) -> None:
    """A first load that failed must not make every agent a learning one."""
    world = watched
    await steady(world, minutes=LEARNING + 2)
    await both_tools(world)
    store = world.services.behaviour_store
    readable = store.baselines

    async def unreadable(**_: Any) -> Any:
        raise OSError("reader down")

    store.baselines = unreadable  # type: ignore[method-assign]
    world.services.baselines = type(world.services.baselines)()
    await (await behaviour.start(world.services)).close()
    async with world.services.engine.connect() as conn:
        before = len((await conn.execute(select(grants.c.id))).all())
    answer = await world.exchange(tool=NEW_TOOL)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "temporarily_unavailable"
    async with world.services.engine.connect() as conn:
        assert len((await conn.execute(select(grants.c.id))).all()) == before
    # Loaded again, the learned agent's new tool asks its owner as before.
    store.baselines = readable  # type: ignore[method-assign]
    await behaviour.refresh(world.services)
    assert "auth_req_id" in (await world.exchange(tool=NEW_TOOL)).json()


async def test_concurrent_calls_of_a_burst_see_each_other(watched: World) -> None:
    """Counted when checked, not once issued: forty at once do not all pass."""
    world = watched
    await steady(world, minutes=LEARNING + 2)  # one a minute: a burst is above 10
    answers = await asyncio.gather(*[world.exchange() for _ in range(40)])
    issued = sum("access_token" in a.json() for a in answers)
    assert issued <= 10 * 1 and await pending_reasons(world), issued


async def proposed(world: World) -> str:
    await steady(world, minutes=6)
    world.clock.advance(86400)
    await world.delegate()
    await steady(world, minutes=1)
    [proposal] = (await promotions(world)).json()["items"]
    return str(proposal["id"])


async def test_a_proposal_made_before_a_quarantine_is_stale_after_the_release(
    earning: World,
) -> None:
    world = earning
    proposal = await proposed(world)
    await containment.contain(
        world.services,
        agent_id=world.agent_id,
        owner_id=world.owner_id,
        trigger="test",
        count=99,
        started=0.0,
        keys=(),
    )
    assert (await level_and_status(world))[1] == "quarantined"
    released = await world.client.post(
        f"/v1/agents/{world.agent_id}/release", headers=world.auth(world.owner_key)
    )
    assert released.status_code == 200, released.text
    url = f"/v1/agents/{world.agent_id}/promotions/{proposal}/accept"
    accepted = await world.client.post(url, headers=world.auth(world.owner_key))
    assert accepted.status_code == 409, accepted.text
    assert await level_and_status(world) == (2, "active")
    [seen] = (await promotions(world)).json()["items"]
    assert seen["status"] == "stale"


async def test_concurrent_acceptances_accept_once(earning: World) -> None:
    world = earning
    proposal = await proposed(world)
    url = f"/v1/agents/{world.agent_id}/promotions/{proposal}/accept"
    answers = await asyncio.gather(
        *[world.client.post(url, headers=world.auth(world.owner_key)) for _ in range(4)]
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    [seen] = (await promotions(world)).json()["items"]
    assert seen["status"] == "accepted"
    assert await level_and_status(world) == (3, "active")
    assert len(await ledger(world, "promotion_accepted")) == 1


async def test_a_promotion_that_cannot_be_weighed_does_not_stop_the_round(
    earning: World,
) -> None:
    world = earning
    store = world.services.behaviour_store
    readable = store.record

    async def unreadable(*_: Any, **__: Any) -> Any:
        raise OSError("reader down")

    await steady(world, minutes=1)
    store.record = unreadable  # type: ignore[method-assign]
    await world.exchange()
    world.clock.advance(60)
    await behaviour.refresh(world.services)  # logged, not raised: the next agent is weighed
    store.record = readable  # type: ignore[method-assign]
    await proposed(world)
