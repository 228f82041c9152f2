"""What a token exchange (RFC 8693) costs in-process, per backend.

    .venv/bin/python -m bench.exchange [--calls 2000] [--backend embedded|postgres|all]
        [--concurrency 16] [--dpop] [--profile]

For each backend (a SQLite file with in-process hot state; a throw-away PostgreSQL
database at ``AUTHORITY_BENCH_POSTGRES_URL`` with Redis at ``AUTHORITY_BENCH_REDIS_URL``)
it sets up an owner, agent, resource server, tool and delegation over the management
API, signs one attestation (and DPoP proof) per request beforehand, and hands each
exchange to the ASGI app directly, as uvicorn would. It prints the CPU time of the
process per exchange (``time.process_time``, which counts the SQLite and signing threads
too) one request at a time and from concurrent tasks, and the wall time of a lone
request. ``--profile`` prints cProfile's view of the concurrent loop. Figures, not
assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.context import Services
from authority.settings import Settings
from authority.storage.database import migrate
from bench.introspection import PG_ADMIN_URL, REDIS_URL, SECRET, asgi_call
from tests.support import ISSUER, World


class _Statuses:
    def __init__(self) -> None:
        self.counts: dict[int, int] = {}


def _caller(app: Any, world: World, dpop: bool, statuses: _Statuses) -> Callable[[], Any]:
    """A fresh, pre-signed exchange per call (the agent's signing is not ours)."""

    def one() -> Callable[[], Awaitable[None]]:
        form = world.exchange_form()
        headers: list[tuple[bytes, bytes]] = []
        if dpop:
            headers.append((b"dpop", world.agent_key.dpop_proof(world.clock.now()).encode()))
        body = urllib.parse.urlencode(form).encode()
        call: Callable[[], Awaitable[None]] = asgi_call(app, "/oauth2/token", body, headers)
        return call

    return one


def _status_app(app: Any, statuses: _Statuses) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                statuses.counts[status] = statuses.counts.get(status, 0) + 1
            await send(message)

        await app(scope, receive, sending)

    return wrapped


async def _cpu_per_call(
    calls: list[Callable[[], Awaitable[None]]], concurrency: int, rates: list[float] | None = None
) -> float:
    """CPU microseconds per call, the calls spread over ``concurrency`` tasks (and the
    calls per second of wall time appended to ``rates``)."""
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    started, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if rates is not None:
        rates.append(len(calls) / (time.perf_counter() - wall))
    return (time.process_time() - started) / len(calls) * 1e6


async def _server_cpu(database: str) -> float:
    """CPU seconds so far of the PostgreSQL backends serving ``database`` (same host)."""
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            pids = (
                await conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                    {"name": database},
                )
            ).scalars()
            total = 0.0
            for pid in pids:
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()  # noqa: ASYNC240 (a bench)
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            return total
    finally:
        await admin.dispose()


async def run(
    settings: Settings, label: str, args: argparse.Namespace, database: str | None = None
) -> None:
    clock = FrozenClock(float(int(time.time())))
    services: Services = build_services(settings, clock=clock)
    await start(services)
    statuses = _Statuses()
    app = _status_app(create_app(settings, services=services), statuses)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            world = await World(client, services, clock).setup()
            answer = await world.exchange()
            assert answer.status_code == 200, answer.text
            make = _caller(app, world, args.dpop, statuses)
            calls = args.calls
            await _cpu_per_call([make() for _ in range(200)], args.concurrency)  # warm up
            sequential = await _cpu_per_call([make() for _ in range(calls)], 1)
            rates: list[float] = []
            batch = [make() for _ in range(calls)]
            server = await _server_cpu(database) if database else 0.0
            parallel = await _cpu_per_call(batch, args.concurrency, rates)
            if database:
                server = (await _server_cpu(database) - server) / calls * 1e6
            lone = []
            for call in [make() for _ in range(min(calls, 500))]:
                started = time.perf_counter()
                await call()
                lone.append((time.perf_counter() - started) * 1e6)
            if args.profile:
                batch = [make() for _ in range(calls)]
                profiler = cProfile.Profile()
                profiler.enable()
                await _cpu_per_call(batch, args.concurrency)
                profiler.disable()
                if args.save:
                    profiler.dump_stats(args.save)
                order = os.environ.get("BENCH_SORT", "tottime")
                pstats.Stats(profiler).sort_stats(order).print_stats(int(args.lines))
        print(f"{label}{' with DPoP' if args.dpop else ''}:")
        print(f"  CPU per exchange, one at a time         {sequential:8.0f} us")
        print(f"  CPU per exchange, {args.concurrency:2d} concurrent tasks  {parallel:8.0f} us")
        if database:
            print(f"  PostgreSQL's CPU per exchange, same loop {server:8.0f} us")
        print(f"  exchanges/s, {args.concurrency:2d} concurrent tasks      {rates[0]:8.0f}")
        print(f"  a lone exchange, wall time p50          {statistics.median(lone):8.0f} us")
        print(f"  statuses {dict(sorted(statuses.counts.items()))}")
    finally:
        await stop(services)


async def embedded(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key=SECRET, auto_migrate=True)
        await run(settings, "embedded (SQLite, in-process hot state)", args)


async def postgres(args: argparse.Namespace) -> None:
    name = f"authority_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rpartition("/")[0] + "/" + name
    try:
        await migrate(url)
        extra: dict[str, Any] = {}
        if args.group_commit is not None:
            extra["exchange_group_commit"] = args.group_commit == "on"
        settings = Settings(
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=f"authority-bench:{name}:",
            redis_timeout=1.0,
            secret_key=SECRET,
            data_dir=Path(tempfile.gettempdir()),
            **extra,
        )
        await run(settings, "postgres (PostgreSQL, Redis)", args, name)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backend", choices=["embedded", "postgres", "all"], default="all")
    parser.add_argument("--dpop", action="store_true", help="a DPoP proof with each exchange")
    parser.add_argument("--group-commit", choices=["on", "off"], default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile the concurrent loop")
    parser.add_argument("--lines", default="40")
    parser.add_argument("--save", default="", help="write the profile to this file")
    args = parser.parse_args()
    if args.backend in ("embedded", "all"):
        asyncio.run(embedded(args))
    if args.backend in ("postgres", "all"):
        asyncio.run(postgres(args))


if __name__ == "__main__":
    main()
