"""Fixtures of the federation tests: a verifier whose key caches run on a clock of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from authority.clock import FrozenClock
from authority.federation.keys import KeyLimits
from authority.federation.verify import WorkloadVerifier
from authority.settings import Settings
from tests.federation_issuers import NOW

#: Short enough that a hanging issuer fails a test quickly, long enough for 2 busy cores.
FETCH_TIMEOUT = 2.0


@pytest.fixture
def key_clock() -> FrozenClock:
    """The clock of the key caches (not named ``clock``: that one is the world's)."""
    return FrozenClock(NOW)


@pytest.fixture
async def verifier(key_clock: FrozenClock) -> AsyncIterator[WorkloadVerifier]:
    limits = KeyLimits(
        max_age=300,
        refresh_min_interval=30,
        fetch_timeout=FETCH_TIMEOUT,
        allow_insecure_loopback=True,
    )
    verifier = WorkloadVerifier(skew=5, limits=limits, clock=key_clock)
    yield verifier
    await verifier.aclose()


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    """The world's settings, with key fetches from the loopback test issuers allowed."""
    result: Settings = settings_factory(federation_allow_insecure_loopback=True)
    return result
