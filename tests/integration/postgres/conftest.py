"""Integration tests: real PostgreSQL and Redis, and more than one authority instance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.context import Services
from authority.settings import Settings
from tests.support import ISSUER


@pytest.fixture
def backend() -> str:
    """Every test here runs on PostgreSQL and Redis only: that is what they are about."""
    return "postgres"


@dataclass
class Instance:
    """One authority instance: its own services, app and client, sharing SQL and Redis."""

    services: Services
    app: Starlette
    client: httpx.AsyncClient


@pytest.fixture
async def instance_b(
    settings: Settings, clock: FrozenClock, instance_b_overrides: dict[str, Any]
) -> AsyncIterator[Instance]:
    """A second instance over the same database and the same Redis key prefix."""
    b_settings = settings.model_copy(update=instance_b_overrides)
    services = build_services(b_settings, clock=clock)
    await start(services)
    app = create_app(b_settings, services=services)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield Instance(services, app, client)
    finally:
        await stop(services)


@pytest.fixture
def instance_b_overrides() -> dict[str, Any]:
    return {}
