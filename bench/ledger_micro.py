"""What the ledger costs: appends per second with and without it, and sequencing per 1000.

    .venv/bin/python -m bench.ledger_micro [--entries 5000] [--backend embedded|postgres|all]

For each backend (a SQLite file; a throw-away PostgreSQL database at
``AUTHORITY_BENCH_POSTGRES_URL``, default the local test server) it prints:

* transactions per second that write one grant row, alone and with its ledger entry
  (``append``: schema validation, canonical JSON, one more INSERT), sequentially and from
  concurrent tasks: the ledger's share of the exchange's write path;
* the sequencer's time per 1000 entries (anti-join, leaf and node inserts, signing one
  checkpoint), as a backlog of all entries at once and in rounds of 100;
* the time of an inclusion and a consistency proof from the stored nodes.

Figures, not assertions: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from authority.app import build_services, start, stop
from authority.context import Services
from authority.ledger import store
from authority.settings import Settings
from authority.storage.database import migrate
from authority.storage.schema import grants
from authority.storage.sql.ledger import append

PG_ADMIN_URL = os.environ.get(
    "AUTHORITY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
CONCURRENCY = 16


def grant_values(n: int, now: int) -> dict[str, Any]:
    return {
        "id": f"grt_{uuid.uuid4().hex}",
        "created_at": now,
        "decision": "issued",
        "reason": None,
        "agent_id": f"agt_{n % 97:032x}",
        "owner_id": f"own_{n % 13:032x}",
        "delegation_id": f"dlg_{n % 211:032x}",
        "tool": "github.issues.create",
        "resource": "https://api.github.com/repos/acme/web/issues",
        "action": "create",
        "intent": "triage bugs in acme/web",
        "audience": "https://api.github.com",
        "jti": uuid.uuid4().hex,
        "token_hash": uuid.uuid4().hex * 2,
        "expires_at": now + 5,
        "cnf_jkt": "x" * 43,
        "single_use": False,
    }


async def write_grant(services: Services, n: int, *, ledger: bool) -> None:
    now = services.now()
    values = grant_values(n, now)
    async with services.engine.begin() as conn:
        await conn.execute(grants.insert().values(**values))
        if ledger:
            record = {k: v for k, v in values.items() if k not in ("id", "created_at")}
            record["grant_id"] = values["id"]
            await append(conn, kind="grant", version=1, created_at=now, record=record)


async def rate(count: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Operations per second of ``work(n)`` for n < count, from ``concurrency`` tasks."""
    counter = iter(range(count))

    async def worker() -> None:
        for n in counter:
            await work(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def bench(settings: Settings, entries: int) -> None:
    services = build_services(settings)
    await start(services)
    sequencer = services.sequencer
    assert sequencer is not None
    try:
        concurrency = 1 if settings.is_embedded else CONCURRENCY
        for tasks in sorted({1, concurrency}):
            # Alternate the two, best of three: the tables grow as the runs go on.
            without = with_ledger = 0.0
            for _ in range(3):
                without = max(
                    without,
                    await rate(entries, tasks, lambda n: write_grant(services, n, ledger=False)),
                )
                with_ledger = max(
                    with_ledger,
                    await rate(entries, tasks, lambda n: write_grant(services, n, ledger=True)),
                )
            cost = 100 * (1 - with_ledger / without)
            print(
                f"  {tasks:>2} task(s): grant only {without:8.0f} tx/s, grant + ledger entry "
                f"{with_ledger:8.0f} tx/s  (ledger: {cost:4.1f}% of write throughput)"
            )

        # Everything appended above is one backlog.
        ledger = services.ledger_reader
        before = await ledger.tree_size()
        started = time.perf_counter()
        await sequencer.run_once()
        elapsed = time.perf_counter() - started
        size = await ledger.tree_size()
        sequenced = size - before
        print(
            f"  sequencing a backlog of {sequenced} entries: "
            f"{1000 * elapsed / sequenced * 1000:7.1f} ms per 1000 entries"
        )

        rounds, per_round, spent = 20, 100, 0.0
        for r in range(rounds):
            for n in range(per_round):
                await write_grant(services, r * per_round + n, ledger=True)
            started = time.perf_counter()
            await sequencer.run_once()
            spent += time.perf_counter() - started
        print(
            f"  sequencing in rounds of {per_round} (tree of {size + rounds * per_round}): "
            f"{1000 * spent / (rounds * per_round) * 1000:7.1f} ms per 1000 entries, "
            f"{1000 * spent / rounds:6.2f} ms per round with its checkpoint"
        )

        size = await ledger.tree_size()
        started = time.perf_counter()
        for i in range(200):
            await store.inclusion_proof(ledger, (i * 7919) % size, size)
        inclusion = (time.perf_counter() - started) / 200
        started = time.perf_counter()
        for i in range(200):
            await store.consistency_proof(ledger, 1 + (i * 104729) % (size - 1), size)
        consistency = (time.perf_counter() - started) / 200
        print(
            f"  proofs on {size} leaves: inclusion {1000 * inclusion:.2f} ms, "
            f"consistency {1000 * consistency:.2f} ms"
        )
    finally:
        await stop(services)


def base_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "secret_key": "benchmark-secret-key-of-at-least-32-chars",
        "auto_migrate": False,
        "checkpoint_interval": 3600.0,  # rounds are run by hand
        **overrides,
    }
    return Settings(**values)


async def embedded(entries: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        settings = base_settings(tmp)
        await migrate(settings.sqlalchemy_url)
        print("embedded (SQLite, WAL):")
        await bench(settings, entries)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def postgres(entries: int) -> None:
    name = f"ledger_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await migrate(url)
        print(f"postgres ({CONCURRENCY} concurrent tasks, one pool):")
        await bench(base_settings(tmp, database_url=url, database_pool_size=CONCURRENCY), entries)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--backend", choices=["embedded", "postgres", "all"], default="all")
    args = parser.parse_args()
    if args.backend in ("embedded", "all"):
        asyncio.run(embedded(args.entries))
    if args.backend in ("postgres", "all"):
        asyncio.run(postgres(args.entries))


if __name__ == "__main__":
    main()
