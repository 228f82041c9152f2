"""The verifier's bounds come from the settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from authority.federation.verify import WorkloadVerifier
from authority.settings import Settings


async def test_from_settings() -> None:
    settings = Settings(
        federation_jwks_max_age=120,
        federation_refresh_min_interval=7,
        federation_fetch_timeout=1.5,
        federation_max_token_lifetime=3600,
        clock_skew=3,
    )
    verifier = WorkloadVerifier.from_settings(settings)
    try:
        limits = verifier.keys.limits
        assert (limits.max_age, limits.refresh_min_interval, limits.fetch_timeout) == (
            120,
            7,
            1.5,
        )
        assert (verifier.skew, verifier.max_lifetime) == (3, 3600)
    finally:
        await verifier.aclose()


def test_keys_are_kept_at_least_as_long_as_the_refresh_interval() -> None:
    with pytest.raises(ValidationError, match="federation_refresh_min_interval"):
        Settings(federation_jwks_max_age=5, federation_refresh_min_interval=10)
    assert Settings(federation_jwks_max_age=10, federation_refresh_min_interval=10)
