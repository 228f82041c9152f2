"""Single uses (``storage.replay``) in SQL: the claims every recording statement makes.

A claim is ``INSERT ... ON CONFLICT DO NOTHING RETURNING key`` into ``used_jtis``: a
second use of a key inserts nothing and so returns no row, and of two concurrent first
uses the unique index makes the later wait for the earlier's commit. The exchange's
writes (``storage.sql.exchange``) claim in the same transaction, or (PostgreSQL) the same
statement, as the decision; ``Sweeper`` deletes rows past their JWTs' expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from authority.storage.driver import UNAVAILABLE, Driver, Transaction
from authority.storage.replay import MOST, SingleUse
from authority.storage.schema import used_jtis

log = logging.getLogger("authority.storage")

#: Rows the sweeper deletes per statement, so no sweep holds a lock for long.
SWEEP_BATCH = 1000


def parameters(uses: Sequence[SingleUse]) -> dict[str, Any]:
    """The bind parameters of ``claim(i)`` for each use, in order."""
    params: dict[str, Any] = {}
    for i, use in enumerate(uses):
        params[f"j{i}_key"] = use.key
        params[f"j{i}_expires_at"] = use.expires_at
    return params


def _claim(dialect: Any, index: int) -> Any:
    statement = dialect.insert(used_jtis).values(
        key=bindparam(f"j{index}_key"), expires_at=bindparam(f"j{index}_expires_at")
    )
    # A second use of the key inserts nothing and so returns no row. Two concurrent first
    # uses: the unique index makes the later one wait for the earlier one's commit.
    return statement.on_conflict_do_nothing(index_elements=["key"]).returning(used_jtis.c.key)


_CLAIMS: Mapping[str, tuple[Any, ...]] = {
    "postgresql": tuple(_claim(postgresql, i) for i in range(MOST)),
    "sqlite": tuple(_claim(sqlite, i) for i in range(MOST)),
}


def claim(dialect: str, index: int = 0) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING key`` of use ``index``'s parameters."""
    return _CLAIMS[dialect][index]


def pg_claims(count: int) -> list[Any]:
    """PostgreSQL: CTEs claiming uses ``0 .. count - 1``, for one-statement writes.

    Each yields a row only if its use is new; a statement gates its writes on them with
    ``all_claimed`` and reports them with ``claimed_flags``.
    """
    return [_CLAIMS["postgresql"][i].cte(f"claimed_{i}") for i in range(count)]


def all_claimed(ctes: Sequence[Any]) -> list[Any]:
    """WHERE conditions that hold only when every claim CTE inserted its row."""
    return [exists(select(cte.c.key)) for cte in ctes]


def claimed_flags(ctes: Sequence[Any]) -> list[Any]:
    """One boolean column per claim CTE: whether this statement made that use."""
    return [exists(select(cte.c.key)).label(f"claimed_{i}") for i, cte in enumerate(ctes)]


async def spend(tx: Transaction, dialect: str, uses: Sequence[SingleUse]) -> tuple[bool, ...]:
    """Record ``uses`` in the caller's transaction; for each, whether it was new."""
    params = parameters(uses)
    return tuple(
        [await tx.fetchrow(claim(dialect, i), params) is not None for i in range(len(uses))]
    )


async def spend_now(sql: Driver, uses: Sequence[SingleUse]) -> tuple[bool, ...]:
    """Record ``uses`` in a transaction of their own (committed when this returns)."""
    if not uses:
        return ()
    async with sql.transaction() as tx:
        return await spend(tx, sql.dialect, uses)


_SWEEP = delete(used_jtis).where(
    used_jtis.c.key.in_(
        select(used_jtis.c.key).where(used_jtis.c.expires_at < bindparam("now")).limit(SWEEP_BATCH)
    )
)


async def sweep(sql: Driver, now: int) -> None:
    """Forget uses whose JWTs have expired, a bounded batch per transaction."""
    async with sql.transaction() as tx:
        await tx.execute(_SWEEP, {"now": now})


class Sweeper:
    """Runs ``sweep`` every ``interval`` seconds in the background (``storage.replay.Sweeps``)."""

    def __init__(self, sql: Driver, clock: Any, *, interval: float) -> None:
        self._sql = sql
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="used-jti-sweeper")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await sweep(self._sql, int(self._clock.now()))
            except UNAVAILABLE as exc:
                # Nothing is lost: the rows wait for the next sweep.
                log.warning("used-jti sweep failed: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
