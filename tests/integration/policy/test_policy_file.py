"""``policy_file`` seeds version 1 of a fresh database; afterwards the stored versions
rule, and a file that differs is a warning at start. A change reaches another instance
reading the same database within its interval."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from authority.app import build_services, start, stop
from authority.clock import FrozenClock
from authority.policy.active import ActivePolicy
from tests.integration.approvals.support import world_with
from tests.support import World

from .support import FORBID_CREATE, entries, set_policy


async def test_the_file_is_version_1_then_the_stored_versions_rule(
    settings_factory: Any, clock: FrozenClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = tmp_path / "policy.cedar"
    policy.write_text(FORBID_CREATE)
    settings = settings_factory(policy_file=policy)
    async with world_with(settings, clock) as world:
        [stored] = await world.services.policy_store.versions()
        assert (stored.version, stored.author, stored.comment) == (1, "file", "from policy.cedar")
        [changed] = await entries(world, "policy_changed")
        assert (changed["author"], changed["actor"], changed["change"]) == (
            "file",
            "file",
            "created",
        )
        assert (await world.exchange()).status_code == 400
        assert (await entries(world, "grant"))[-1]["policy_version"] == 1

        # Another start with a changed file: nothing stored, a warning, version 1 decides.
        policy.write_text("")
        again = build_services(settings, clock=clock)
        with caplog.at_level(logging.WARNING, logger="authority.policy"):
            await start(again)
        try:
            assert len(await again.policy_store.versions()) == 1
            assert (await again.policy.current()).version == 1
            assert "policy_file differs from the active policy version 1" in caplog.text
        finally:
            await stop(again)


async def test_another_instance_decides_on_a_change_within_its_interval(world: World) -> None:
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    ticks = Clock()
    # A second instance on the same database (its own compiled copy, its own interval).
    other = ActivePolicy(world.services.policy_store, interval=5, timeout=5, monotonic=ticks)
    assert (await other.current()).version == 0
    created = await set_policy(world, FORBID_CREATE)
    assert created.status_code == 201
    # This instance decides its next request on it at once, the other within 5 s.
    assert (await world.services.policy.current()).version == 1
    assert (await other.current()).version == 0
    ticks.now += 5
    assert (await other.current()).version == 1
    assert (await other.current()).policy.count == 1


async def test_an_exchange_is_a_503_when_the_active_version_cannot_be_read(
    world: World,
) -> None:
    store = world.services.policy_store

    class Down:
        async def active_version(self) -> int | None:
            raise OSError("database down")

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

    before = await entries(world, "grant")
    world.services.policy = ActivePolicy(Down(), interval=0, timeout=5)  # type: ignore[arg-type]
    refused = await world.exchange()
    assert refused.status_code == 503
    assert refused.json()["error"] == "temporarily_unavailable"
    assert "access_token" not in refused.text
    assert await entries(world, "grant") == before
