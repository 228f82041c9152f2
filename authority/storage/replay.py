"""Single use of JWT ids (RFC 7523 §3 item 7, RFC 9449 §11.1), held in SQL.

RFC 7523 §3: "The authorization server MAY ensure that JWTs are not replayed by
maintaining the set of used "jti" values for the length of time for which the JWT would
be considered valid". Here it is a MUST for every JWT an agent or a resource server
authenticates with, and for every DPoP proof the token endpoint accepts. The set lives
in the SQL database, the source of truth, and is written in the same statement or
transaction as the decision it belongs to, so Redis need not remember anything for
replay protection: a restart or a failover of Redis cannot let an attestation or a proof
be used twice.

A use is keyed by the SHA-256 of its namespace and jti (never the jti itself, which is
the client's text) and kept until the JWT can no longer pass its expiry check; the
``Sweeper`` deletes rows past that.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from .driver import UNAVAILABLE, Driver, Transaction
from .schema import used_jtis

log = logging.getLogger("authority.storage")

#: Rows the sweeper deletes per statement, so no sweep holds a lock for long.
SWEEP_BATCH = 1000

#: Most single uses one decision records (an attestation and a DPoP proof).
MOST = 2


@dataclass(frozen=True, slots=True)
class SingleUse:
    """One JWT id to spend: its digest and when it may be forgotten."""

    key: str
    expires_at: int


def single_use(namespace: str, scope: str, jti: str, *, expires_at: int) -> SingleUse:
    """The use of ``jti`` by ``scope`` (an agent id, a key thumbprint, a client id)."""
    material = f"{namespace}\x00{scope}\x00{jti}".encode()
    return SingleUse(hashlib.sha256(material).hexdigest(), expires_at)


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
    """Runs ``sweep`` every ``interval`` seconds in the background."""

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
