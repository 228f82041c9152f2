"""Automatic containment's rolling window: violations per agent, counted in hot state.

Two fixed buckets of ``containment_window`` seconds (this one and the last), the last one
weighted by how much of it the rolling window still covers: the sliding-window estimate
of a rate limiter, one atomic increment and one read per violation. Hot state need not
keep the counts: losing them starts an agent's count again, never stops a quarantine.
"""

from __future__ import annotations

from authority.storage.hot import Count, HotState


def keys(agent_id: str, now: int, window: int) -> tuple[str, str]:
    """The agent's current and previous buckets.

    One hash tag, the agent's id, for both: on a Redis Cluster they live on one node, so
    losing a node loses an agent's two buckets together (never one estimate made of a
    lost bucket and a kept one), and a call may name both (``storage.hot``).
    """
    bucket = now // window
    return f"contain:{{{agent_id}}}:{bucket}", f"contain:{{{agent_id}}}:{bucket - 1}"


def estimate(current: int, previous: int, now: int, window: int) -> float:
    overlap = 1.0 - (now % window) / window
    return current + previous * overlap


async def read(hot: HotState, agent_id: str, now: int, window: int) -> float:
    """The agent's rolling count at ``now``."""
    current, previous = keys(agent_id, now, window)
    return estimate(
        int(await hot.get(current) or 0), int(await hot.get(previous) or 0), now, window
    )


async def add(hot: HotState, agent_id: str, now: int, window: int) -> tuple[float, tuple[str, str]]:
    """Count one violation; the rolling count after it, and the buckets it lives in."""
    current_key, previous_key = keys(agent_id, now, window)
    current = (await hot.apply([], [Count(current_key, 2 * window)])).counts[0]
    previous = int(await hot.get(previous_key) or 0)
    return estimate(current, previous, now, window), (current_key, previous_key)
