"""authority.rate_window: local counting, its bound on over-admission, and failing closed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from authority.rate_window import RateWindows
from authority.storage.hot import Claim, Count, HotStateUnavailable, MemoryHotState, Outcome

NOW = 1_800_000_020  # twenty seconds into a minute


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FlakyHot(MemoryHotState):
    """Hot state that can be switched off, and counts its round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.trips = 0

    async def apply(self, claims: Sequence[Claim], counts: Sequence[Count]) -> Outcome:
        self.trips += 1
        await asyncio.sleep(0)  # a round trip yields, as Redis's does
        if self.down:
            raise HotStateUnavailable("ConnectionError")
        return await super().apply(claims, counts)


def windows(
    hot: FlakyHot, clock: Monotonic, *, budget: int = 10, allowance: float = 2.0
) -> RateWindows:
    return RateWindows(hot, interval=0.1, budget=budget, allowance=allowance, monotonic=clock)


async def admitted(w: RateWindows, limit: int, requests: int) -> int:
    counts = await asyncio.gather(*(w.count("introspect", "rs_1", NOW) for _ in range(requests)))
    return sum(1 for c in counts if c <= limit)


async def test_one_worker_counts_exactly() -> None:
    hot, clock = FlakyHot(), Monotonic()
    w = windows(hot, clock)
    counts = [await w.count("introspect", "rs_1", NOW) for _ in range(25)]
    assert counts == list(range(1, 26))
    # Not one round trip per request: one to start, then one per budget spent.
    assert hot.trips < 25


async def test_a_client_over_its_limit_is_refused_across_workers() -> None:
    hot, clock = FlakyHot(), Monotonic()
    fleet = [windows(hot, clock) for _ in range(3)]
    for _ in range(5):
        for w in fleet:
            await admitted(w, 20, 10)
        clock.t += 0.2  # reconciliations happen
    for w in fleet:
        await w.count("introspect", "rs_1", NOW)  # learns the shared count
    await asyncio.sleep(0)
    for w in fleet:
        assert await w.count("introspect", "rs_1", NOW) > 20
    # Another client's window is its own.
    assert await fleet[0].count("introspect", "rs_2", NOW) == 1


@pytest.mark.parametrize(("workers", "budget", "limit"), [(4, 10, 50), (3, 25, 10), (2, 1, 7)])
async def test_over_admission_is_bounded(workers: int, budget: int, limit: int) -> None:
    # The clock never moves: no interval-driven reconciliation, only the budget's.
    hot, clock = FlakyHot(), Monotonic()
    fleet = [windows(hot, clock, budget=budget) for _ in range(workers)]
    total = 0
    for _ in range(20):
        rounds = await asyncio.gather(*(admitted(w, limit, budget * 3) for w in fleet))
        total += sum(rounds)
    assert limit <= total <= limit + workers * min(budget, limit)


async def test_hot_state_down_keeps_counting_within_the_budget_and_allowance() -> None:
    hot, clock = FlakyHot(), Monotonic()
    w = windows(hot, clock, budget=10, allowance=2.0)
    assert await w.count("introspect", "rs_1", NOW) == 1  # reconciled once
    await asyncio.sleep(0)
    hot.down = True
    clock.t += 1.0
    counts = [await w.count("introspect", "rs_1", NOW) for _ in range(9)]
    assert counts == list(range(2, 11))
    # The budget of unreconciled admissions is spent: fail closed.
    with pytest.raises(HotStateUnavailable):
        await w.count("introspect", "rs_1", NOW)


async def test_hot_state_down_past_the_allowance_fails_closed() -> None:
    hot, clock = FlakyHot(), Monotonic()
    w = windows(hot, clock, budget=1000, allowance=2.0)
    await w.count("introspect", "rs_1", NOW)
    await asyncio.sleep(0)
    hot.down = True
    clock.t += 1.9
    await w.count("introspect", "rs_1", NOW)
    clock.t += 0.2
    with pytest.raises(HotStateUnavailable):
        await w.count("introspect", "rs_1", NOW)
    # Back once hot state answers again, with the count it missed.
    hot.down = False
    assert await w.count("introspect", "rs_1", NOW) == 3


async def test_a_worker_that_never_reached_hot_state_admits_nothing() -> None:
    hot, clock = FlakyHot(), Monotonic()
    hot.down = True
    with pytest.raises(HotStateUnavailable):
        await windows(hot, clock).count("introspect", "rs_1", NOW)


async def test_a_new_minute_starts_from_zero() -> None:
    hot, clock = FlakyHot(), Monotonic()
    w = windows(hot, clock)
    for _ in range(5):
        await w.count("introspect", "rs_1", NOW)
    assert await w.count("introspect", "rs_1", NOW + 60) == 1


async def test_a_cancelled_waiter_does_not_cancel_the_reconciliation() -> None:
    hot, clock = FlakyHot(), Monotonic()
    w = windows(hot, clock)
    first = asyncio.create_task(w.count("introspect", "rs_1", NOW))
    second = asyncio.create_task(w.count("introspect", "rs_1", NOW))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await w.count("introspect", "rs_1", NOW) == 2
    await w.close()


async def test_a_past_minute_with_nothing_to_add_is_forgotten() -> None:
    """Idle clients' old windows would otherwise be sent (and their keys made again) at
    every reconciliation, one apply per old minute."""
    hot, clock = FlakyHot(), Monotonic()
    w = windows(hot, clock, budget=1)
    await w.count("introspect", "rs_idle", NOW)
    clock.t += 0.2
    await w.count("introspect", "rs_busy", NOW + 60)  # the next minute
    for _ in range(3):
        clock.t += 0.2
        await w.count("introspect", "rs_busy", NOW + 60)
    await asyncio.sleep(0)
    assert list(w._windows) == [("introspect", "rs_busy")]
