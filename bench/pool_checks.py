"""What checking pooled PostgreSQL connections costs per checkout: none, the ``is_closed``
check ``storage.database`` makes (no round trip), and SQLAlchemy's ``pool_pre_ping``.

    python -m bench.pool_checks [postgresql://postgres@127.0.0.1:5432/postgres]

Prints microseconds per checkout and return of one pooled connection (median of runs).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from authority.storage import database

CHECKOUTS = 2000
RUNS = 5


async def per_checkout(url: str, mode: str) -> float:
    engine = create_async_engine(url, pool_size=1, pool_pre_ping=mode == "pre_ping")
    if mode == "is_closed":
        event.listen(engine.sync_engine, "checkout", database._drop_dead)
    try:
        async with engine.connect():
            pass  # open the one connection
        runs = []
        for _ in range(RUNS):
            started = time.perf_counter()
            for _ in range(CHECKOUTS):
                async with engine.connect() as conn:
                    await conn.get_raw_connection()
            runs.append((time.perf_counter() - started) / CHECKOUTS * 1e6)
        return statistics.median(runs)
    finally:
        await engine.dispose()


async def main(url: str) -> None:
    for mode in ("none", "is_closed", "pre_ping"):
        print(f"{mode:>10}: {await per_checkout(url, mode):7.1f} µs per checkout")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
    asyncio.run(main(target.replace("postgresql://", "postgresql+asyncpg://", 1)))
