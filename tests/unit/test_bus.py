"""The event bus: order, awaiting, and which failures reach the publisher."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from authority.bus import EventBus


@dataclass(frozen=True)
class Happened:
    n: int


@dataclass(frozen=True)
class Other:
    pass


async def test_handlers_run_in_subscription_order_and_coroutines_are_awaited() -> None:
    bus = EventBus()
    seen: list[str] = []

    async def second(event: Happened) -> None:
        seen.append(f"second {event.n}")

    bus.subscribe(Happened, lambda e: seen.append(f"first {e.n}"))
    bus.subscribe(Happened, second)
    bus.subscribe(Other, lambda e: seen.append("other"))
    await bus.publish(Happened(1))
    assert seen == ["first 1", "second 1"]


async def test_a_failing_handler_is_logged_and_the_next_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[int] = []

    def broken(event: Happened) -> None:
        raise RuntimeError("boom")

    bus.subscribe(Happened, broken)
    bus.subscribe(Happened, lambda e: seen.append(e.n))
    await bus.publish(Happened(2))
    assert seen == [2]
    assert "handler of Happened failed: RuntimeError" in caplog.text


async def test_a_security_rules_failure_reaches_the_publisher() -> None:
    bus = EventBus()
    seen: list[int] = []

    async def rule(event: Happened) -> None:
        raise RuntimeError("cannot count")

    bus.subscribe(Happened, rule, propagate=True)
    bus.subscribe(Happened, lambda e: seen.append(e.n))
    with pytest.raises(RuntimeError):
        await bus.publish(Happened(3))
    assert seen == []
