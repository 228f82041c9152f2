"""Recording fixtures: the sequencer driven by hand, so tests decide when entries are signed."""

from __future__ import annotations

from typing import Any

import pytest

from authority.settings import Settings


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(checkpoint_interval=3600.0)
    return result
