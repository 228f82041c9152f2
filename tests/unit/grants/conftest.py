from __future__ import annotations

import httpx
import pytest

from authority.clock import FrozenClock
from authority.context import Services
from tests.support import World


@pytest.fixture
async def world(client: httpx.AsyncClient, services: Services, clock: FrozenClock) -> World:
    return await World(client, services, clock).setup()
