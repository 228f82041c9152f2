"""What an introspection (RFC 7662) costs in-process, per backend.

    .venv/bin/python -m bench.introspection [--calls 2000] [--backend embedded|postgres|all]

For each backend (a SQLite file with in-process hot state; a throw-away PostgreSQL
database at ``AUTHORITY_BENCH_POSTGRES_URL`` with Redis at ``AUTHORITY_BENCH_REDIS_URL``,
default the local test servers) it sets up an owner, agent, resource server, tool and
delegation over the management API, issues one access token, and prints:

* the signature check alone (``tokens.validate.verify_own``: keyring lookup, EdDSA);
* ``grants.introspection.introspect`` called directly (what the endpoint adds nothing
  to but form parsing): sequentially, in microseconds per call, and from 16 concurrent
  tasks, in calls per second;
* the whole HTTP round trip through the ASGI app with an in-process httpx client (form
  parsing, routing, rendering, plus httpx's own overhead);
* the same request handed to the ASGI app directly (what the server does per request,
  without uvicorn's HTTP parsing); ``--profile`` prints cProfile's view of that loop;
* the CPU time of this process per call (``time.process_time``) of ``introspect()`` and
  of the ASGI request: what the HTTP layer adds, with less noise than the wall clock.

Every call is the full check: one SQL query joining the caller's registration and the
token's grant, delegation, agent and owner, and one hot-state round trip (the caller's
rate window). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import os
import pstats
import statistics
import tempfile
import time
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
from authority.grants.client_auth import Presented
from authority.grants.introspection import IntrospectionRequest, introspect
from authority.settings import Settings
from authority.storage.database import migrate
from authority.tokens.access_token import AT_TYP
from authority.tokens.inbound import peek
from authority.tokens.validate import verify_own
from tests.support import ISSUER, World

PG_ADMIN_URL = os.environ.get(
    "AUTHORITY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("AUTHORITY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret-key-with-at-least-32-characters!!"
CONCURRENCY = 16


async def timed(calls: int, work: Callable[[], Awaitable[Any]]) -> float:
    """Microseconds per call, the median of three runs."""
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            await work()
        runs.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(runs)


async def cpu(calls: int, work: Callable[[], Awaitable[Any]]) -> float:
    """Microseconds of this process's CPU per call (``time.process_time``), the lowest of
    five runs: on a shared machine, less noisy than the wall clock."""
    runs = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(calls):
            await work()
        runs.append((time.process_time() - started) / calls * 1e6)
    return min(runs)


async def throughput(calls: int, work: Callable[[], Awaitable[Any]]) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await work()

    started = time.perf_counter()
    await asyncio.gather(*(worker(calls // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (calls // CONCURRENCY * CONCURRENCY) / (time.perf_counter() - started)


def asgi_call(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
    """One request straight into the ASGI app, as uvicorn would hand it over."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> Any:
        return message

    async def send(_: Any) -> None:
        return None

    async def call() -> None:
        await app(dict(scope), receive, send)

    return call


async def run(settings: Settings, label: str, calls: int, profile: bool = False) -> None:
    clock = FrozenClock(float(int(time.time())))
    services: Services = build_services(settings, clock=clock)
    await start(services)
    app = create_app(settings, services=services)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            world = await World(client, services, clock).setup()
            response = await world.exchange()  # the clock is frozen: it stays alive
            token = response.json()["access_token"]
            request = IntrospectionRequest(
                credentials=Presented(
                    "client_secret_basic", world.server_id, secret=world.server_secret
                ),
                token=token,
                endpoint_url=ISSUER + "/oauth2/introspect",
            )
            answer = await introspect(services, request)
            assert answer["active"] is True

            def verify() -> None:
                verify_own(services, peek(token), AT_TYP)

            started = time.perf_counter()
            for _ in range(calls):
                verify()
            signature = (time.perf_counter() - started) / calls * 1e6

            async def domain() -> None:
                await introspect(services, request)

            auth = httpx.BasicAuth(world.server_id, world.server_secret)

            async def over_http() -> None:
                await client.post("/oauth2/introspect", data={"token": token}, auth=auth)

            basic = base64.b64encode(f"{world.server_id}:{world.server_secret}".encode())
            raw = asgi_call(
                app,
                "/oauth2/introspect",
                f"token={token}".encode(),
                [(b"authorization", b"Basic " + basic)],
            )
            sequential = await timed(calls, domain)
            parallel = await throughput(calls, domain)
            http = await timed(max(calls // 2, 1), over_http)
            direct = await timed(calls, raw)
            direct_cpu = await cpu(calls, raw)
            domain_cpu = await cpu(calls, domain)
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await throughput(calls * 2, raw)
                profiler.disable()
                order = os.environ.get("BENCH_SORT", "tottime")
                pstats.Stats(profiler).sort_stats(order).print_stats(35)
        print(f"{label}:")
        print(f"  signature check (verify_own)            {signature:8.0f} us/call")
        print(f"  introspect(), sequential                {sequential:8.0f} us/call")
        print(f"  introspect(), {CONCURRENCY} concurrent tasks       {parallel:8.0f} calls/s")
        print(f"  POST /oauth2/introspect via httpx ASGI  {http:8.0f} us/call")
        print(f"  POST /oauth2/introspect, ASGI directly  {direct:8.0f} us/call")
        print(f"  introspect(), CPU                       {domain_cpu:8.0f} us/call")
        print(f"  POST /oauth2/introspect, ASGI, CPU      {direct_cpu:8.0f} us/call")
    finally:
        await stop(services)


async def embedded(calls: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            secret_key=SECRET,
            auto_migrate=True,
            introspection_rate_per_minute=10**9,
        )
        await run(settings, "embedded (SQLite, in-process hot state)", calls, profile)


async def postgres(calls: int, profile: bool) -> None:
    name = f"authority_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rpartition("/")[0] + "/" + name
    try:
        await migrate(url)
        settings = Settings(
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=f"authority-bench:{name}:",
            # The default (50 ms) is measured on the event loop: with 16 tasks busy on a
            # small machine a reply can wait that long behind them and fail closed (503).
            redis_timeout=1.0,
            secret_key=SECRET,
            introspection_rate_per_minute=10**9,
            data_dir=Path(tempfile.gettempdir()),
        )
        await run(settings, "postgres (PostgreSQL, Redis)", calls, profile)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--backend", choices=["embedded", "postgres", "all"], default="all")
    parser.add_argument("--profile", action="store_true", help="cProfile the ASGI loop")
    args = parser.parse_args()
    if args.backend in ("embedded", "all"):
        asyncio.run(embedded(args.calls, args.profile))
    if args.backend in ("postgres", "all"):
        asyncio.run(postgres(args.calls, args.profile))


if __name__ == "__main__":
    main()
