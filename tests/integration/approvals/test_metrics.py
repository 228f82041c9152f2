"""``/metrics``: protected, counts requests by route template, exchanges by decision,
per agent within a bound, and never shows a token."""

from __future__ import annotations

import platform
from typing import Any

import httpx
import pytest

from authority import __version__
from authority.clock import FrozenClock
from authority.metrics import REASONS
from tests.support import AgentKey, World

from .support import ask_pending, with_risky_tool, world_with

TOKEN = "m" * 40


def value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(world: World, key: str | None = None) -> httpx.Response:
    return await world.client.get("/metrics", headers=world.auth(key or world.admin))


async def test_metrics_need_an_admin_or_auditor_key(world: World) -> None:
    anonymous = await world.client.get("/metrics")
    assert anonymous.status_code == 401
    assert (await scrape(world, world.owner_key)).status_code == 403
    auditor = (await world.post("/v1/api-keys", world.admin, {"role": "auditor"}))["api_key"]
    response = await scrape(world, auditor)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (await world.client.get("/metrics?x=1", headers=world.auth(auditor))).status_code == 400


async def test_a_configured_scrape_token_is_the_only_way_in(
    settings_factory: Any, clock: FrozenClock
) -> None:
    async with world_with(settings_factory(metrics_token=TOKEN), clock) as world:
        assert (await scrape(world, TOKEN)).status_code == 200
        assert (await scrape(world, world.admin)).status_code == 401
        assert (await scrape(world, TOKEN[:-1] + "x")).status_code == 401


async def test_metrics_can_be_turned_off(settings_factory: Any, clock: FrozenClock) -> None:
    async with world_with(settings_factory(metrics_enabled=False), clock) as world:
        assert (await scrape(world)).status_code == 404


async def test_exchanges_are_counted_by_decision_overall_and_per_agent(world: World) -> None:
    await with_risky_tool(world)
    issued = await world.exchange()
    assert issued.status_code == 200
    await ask_pending(world)
    assert (await world.exchange(tool="nope")).status_code == 400
    await world.client.get(f"/v1/agents/{world.agent_id}", headers=world.auth(world.owner_key))
    text = (await scrape(world)).text
    for decision in ("issued", "pending", "denied"):
        assert value(text, f'authority_exchanges_total{{decision="{decision}"}}') == 1
        series = (
            f'authority_agent_exchanges_total{{agent="{world.agent_id}",decision="{decision}"}}'
        )
        assert value(text, series) == 1
    # Routes by template: the agent id is not a label value of the request series.
    route = 'authority_http_requests_total{method="GET",route="/v1/agents/{agent_id}",status="200"}'
    assert value(text, route) == 1
    assert 'route="/oauth2/token"' in text
    assert world.agent_id not in text.split("authority_http_requests_total")[1].split("\n# ")[0]
    # No token, key or secret ever appears.
    for secret in (issued.json()["access_token"], world.owner_key, world.admin, world.credential):
        assert secret not in text


async def test_per_agent_series_are_bounded(settings_factory: Any, clock: FrozenClock) -> None:
    async with world_with(settings_factory(metrics_max_agents=1), clock) as world:
        assert (await world.exchange()).status_code == 200
        other_key = AgentKey()
        other = await world.post(
            "/v1/agents",
            world.owner_key,
            {"name": "second", "autonomy_level": 2, "jwks": other_key.jwks()},
        )
        first_agent, world.agent_id, world.agent_key = world.agent_id, other["id"], other_key
        await world.delegate()
        assert (await world.exchange()).status_code == 200
        text = (await scrape(world)).text
        assert first_agent in text
        assert world.agent_id not in text
        assert value(text, 'authority_agent_exchanges_total{agent="other",decision="issued"}') == 1


@pytest.mark.parametrize("forged", [True])
async def test_unauthenticated_requests_mint_no_agent_series(world: World, forged: bool) -> None:
    for n in range(3):
        form = world.exchange_form(
            attestation=AgentKey().attestation(f"agt_{n:032d}", world.clock.now())
        )
        assert (await world.client.post("/oauth2/token", data=form)).status_code == 400
    text = (await scrape(world)).text
    assert value(text, 'authority_exchanges_total{decision="denied"}') == 3
    assert "agt_0000" not in text


async def test_denials_are_counted_by_their_reason_code_only(world: World) -> None:
    assert (await world.exchange(tool="nope")).status_code == 400
    text = (await scrape(world)).text
    assert value(text, 'authority_exchange_denials_total{reason="tool_unknown"}') == 1
    # A string that is no reason code never becomes a label value.
    world.services.metrics.deny("made-up <reason>")
    world.services.metrics.deny("x" * 200)
    text = (await scrape(world)).text
    assert value(text, 'authority_exchange_denials_total{reason="other"}') == 2
    assert "made-up" not in text
    labels = [
        line.split('reason="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("authority_exchange_denials_total{")
    ]
    assert set(labels) <= REASONS | {"other"}


async def test_build_info_process_and_pool_series(world: World) -> None:
    text = (await scrape(world)).text
    build = f'authority_build_info{{python="{platform.python_version()}",version="{__version__}"}}'
    assert value(text, build) == 1
    assert value(text, "process_resident_memory_bytes") > 0
    assert "process_cpu_seconds_total " in text
    for pool in ("engine", "hot_path"):
        assert value(text, f'authority_db_pool_size{{pool="{pool}"}}') >= 1
        assert f'authority_db_pool_checked_out{{pool="{pool}"}}' in text
    assert value(text, "authority_feed_streams_open") == 0


async def test_the_sequencer_lag_is_the_time_since_the_ledger_was_last_caught_up(
    world: World, clock: FrozenClock
) -> None:
    sequencer = world.services.sequencer
    assert sequencer is not None
    await sequencer.run_once()
    caught_up = clock.now()
    assert sequencer.sequenced_at == caught_up
    await sequencer.stop()  # as a stuck sequencer: nothing moves it on
    clock.advance(90)
    text = (await scrape(world)).text
    assert value(text, "authority_ledger_sequenced_timestamp_seconds") == caught_up
    assert value(text, "authority_ledger_sequencer_lag_seconds") == 90
