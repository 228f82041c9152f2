"""The retention sweeper runs in the background, started and stopped with the services."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from authority.clock import FrozenClock
from authority.settings import Settings
from authority.storage.schema import call_recordings
from tests.support import World

from .support import call, issued_jti, submit


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(checkpoint_interval=3600.0, recording_sweep_interval=0.05)
    return result


async def test_heads_past_retention_are_deleted_in_the_background(
    world: World, clock: FrozenClock
) -> None:
    assert world.services.recording_sweeper is not None
    response = await submit(world, call(await issued_jti(world)))
    assert response.status_code == 201, response.text
    clock.advance(31 * 86400)
    for _ in range(200):
        async with world.services.engine.connect() as conn:
            swept = (await conn.execute(select(call_recordings.c.swept_at))).scalar_one()
        if swept is not None:
            break
        await asyncio.sleep(0.02)
    assert swept == world.services.now()
