"""The kill switch at fleet scale: time to contain on another instance, and no stall for others.

    .venv/bin/python -m bench.kill [--delegations 1000] [--duration 10]

Two authority processes (uvicorn serving ``authority.asgi:app``, settings from the
environment) over one PostgreSQL database and one Redis; the load generator (real HTTP
with httpx) runs in this process. Owner A has ``--delegations`` live delegations (8 held
by agents exchanging without pause on instance 1; the rest inserted directly, spread over
100 idle agents), owner B has 4 agents exchanging on instance 1. After a third of
``--duration`` the kill switch is pressed for A on instance 2. Printed: the kill's
latency, the time from the kill's request to its containment committed (instance 2's
metric), the time from the press to the first refused call of A on instance 1 among the
calls sent after the press, A's calls issued that were sent after the kill returned (must
be 0), and B's p50/p99 before, during and after the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from authority.app import build_services, start, stop
from authority.clock import SystemClock
from authority.context import Services
from authority.settings import Settings
from authority.storage.database import migrate
from authority.storage.schema import agents, delegations
from tests.processes import authority_processes
from tests.support import AgentKey, World

PG_ADMIN_URL = os.environ.get(
    "AUTHORITY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("AUTHORITY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
EXCHANGING_A, EXCHANGING_B, IDLE_AGENTS = 8, 4, 100


async def agent_world(base: World, name: str) -> World:
    """Another exchanging agent of ``base``'s owner, with its own delegation."""
    w = World(base.client, base.services, base.clock, admin=base.admin)
    w.owner_id, w.owner_key = base.owner_id, base.owner_key
    w.server_id, w.server_secret = base.server_id, base.server_secret
    w.agent_key = AgentKey()
    agent = await w.post(
        "/v1/agents", w.owner_key, {"name": name, "autonomy_level": 2, "jwks": w.agent_key.jwks()}
    )
    w.agent_id = agent["id"]
    await w.delegate()
    return w


async def second_owner(base: World) -> World:
    w = World(base.client, base.services, base.clock, admin=base.admin)
    owner = await w.post("/v1/owners", base.admin, {"name": f"b-{uuid.uuid4().hex[:6]}"})
    w.owner_id = owner["id"]
    w.owner_key = (await w.post(f"/v1/owners/{w.owner_id}/api-keys", base.admin, {}))["api_key"]
    w.server_id, w.server_secret = base.server_id, base.server_secret
    w.agent_key = AgentKey()
    agent = await w.post(
        "/v1/agents", w.owner_key, {"name": "b0", "autonomy_level": 2, "jwks": w.agent_key.jwks()}
    )
    w.agent_id = agent["id"]
    await w.delegate()
    return w


async def bulk_delegations(services: Services, owner_id: str, template_id: str, n: int) -> None:
    """``n`` more live delegations of the owner, over idle agents, written directly."""
    async with services.engine.begin() as conn:
        agent = (await conn.execute(select(agents).where(agents.c.owner_id == owner_id))).first()
        template = (
            await conn.execute(select(delegations).where(delegations.c.id == template_id))
        ).one()
        assert agent is not None
        idle = [
            {**agent._asdict(), "id": f"idle-{uuid.uuid4().hex}", "name": f"idle-{i}"}
            for i in range(IDLE_AGENTS)
        ]
        await conn.execute(agents.insert(), idle)
        rows = [
            {
                **template._asdict(),
                "id": f"bulk-{uuid.uuid4().hex}",
                "agent_id": idle[i % IDLE_AGENTS]["id"],
            }
            for i in range(n)
        ]
        for start_at in range(0, len(rows), 2000):
            await conn.execute(delegations.insert(), rows[start_at : start_at + 2000])


def metric(exposition: str, name: str) -> float:
    """The value of one sample (no labels) in a Prometheus text exposition."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def run(settings: Settings, n: int, duration: float) -> None:
    # The bench's own services: signing keys, the bootstrap admin key and the data
    # written directly. Stopped before the load starts, so that only the two authority
    # processes serve (and the load generator runs alone in this process).
    local = build_services(settings, clock=SystemClock())
    await start(local)
    stopped_local = False
    with (
        tempfile.TemporaryDirectory() as data_dir,
        authority_processes(
            settings,
            Path(data_dir),
            2,
            AUTHORITY_CONTAINMENT_THRESHOLD=str(settings.containment_threshold),
        ) as urls,
    ):
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        c1 = httpx.AsyncClient(base_url=urls[0], timeout=60, limits=limits)
        c2 = httpx.AsyncClient(base_url=urls[1], timeout=60)
        try:
            base = World(c1, local, SystemClock())  # type: ignore[arg-type]
            await base.setup()
            fleet_a = [base] + [await agent_world(base, f"a{i}") for i in range(1, EXCHANGING_A)]
            b0 = await second_owner(base)
            fleet_b = [b0] + [await agent_world(b0, f"b{i}") for i in range(1, EXCHANGING_B)]
            await bulk_delegations(local, base.owner_id, base.delegation_id, n - EXCHANGING_A)
            await stop(local)
            stopped_local = True

            calls: list[tuple[str, float, float, int]] = []  # owner, sent, answered, status
            stop_at = time.perf_counter() + duration

            async def loop(w: World, label: str) -> None:
                while time.perf_counter() < stop_at:
                    sent = time.perf_counter()
                    status = (await w.exchange()).status_code
                    calls.append((label, sent, time.perf_counter(), status))

            loops = [asyncio.create_task(loop(w, "A")) for w in fleet_a]
            loops += [asyncio.create_task(loop(w, "B")) for w in fleet_b]
            await asyncio.sleep(duration / 3)
            pressed = time.perf_counter()
            pressed_wall = time.time()
            response = await c2.post(
                f"/v1/owners/{base.owner_id}/kill",
                json={"reason": "bench"},
                headers=base.auth(base.owner_key),
            )
            returned = time.perf_counter()
            await asyncio.gather(*loops)
            body = response.json()
            assert response.status_code == 200, response.text
            exposition = (await c2.get("/metrics", headers=base.auth(base.admin))).text
        finally:
            await c1.aclose()
            await c2.aclose()
            if not stopped_local:
                await stop(local)

    # The first refusal counts only a call of A sent after the kill was sent.
    refused_a = [c for c in calls if c[0] == "A" and c[3] != 200 and c[1] >= pressed]
    first_refusal = min(c[2] for c in refused_a) - pressed if refused_a else float("nan")
    after = [c for c in calls if c[0] == "A" and c[3] == 200 and c[1] >= returned]
    before_b = [c[2] - c[1] for c in calls if c[0] == "B" and c[2] < pressed]
    during_b = [c[2] - c[1] for c in calls if c[0] == "B" and pressed <= c[1] <= returned]
    after_b = [c[2] - c[1] for c in calls if c[0] == "B" and c[1] > returned]
    b_errors = sum(1 for c in calls if c[0] == "B" and c[3] != 200)
    to_commit = metric(exposition, "authority_kill_switch_time_to_contain_seconds_sum")
    cascade_time = metric(exposition, "authority_kill_switch_cascade_seconds_sum")

    def p(values: list[float], q: int) -> str:
        if len(values) < 2:
            return "n/a" if not values else f"{values[0] * 1000:.1f}"
        return f"{statistics.quantiles(values, n=100)[q - 1] * 1000:.1f}"

    print(f"delegations of A: {n}; revoked by the kill: {len(body['revoked_delegations'])}")
    print(f"kill latency (instance 2): {(returned - pressed) * 1000:.0f} ms")
    print(
        f"containment committed on instance 2: {to_commit * 1000:.1f} ms after the kill's "
        f"request arrived (its metric); contained_at {body['contained_at']} vs press "
        f"{pressed_wall:.3f} (whole seconds); the cascade after it: {cascade_time * 1000:.0f} ms"
    )
    print(f"first refusal of A on instance 1: {first_refusal * 1000:.1f} ms after the press")
    if refused_a:
        first = min(refused_a, key=lambda c: c[2])
        before_a = [c[2] - c[1] for c in calls if c[0] == "A" and c[2] < pressed]
        print(
            f"  that call was sent {(first[1] - pressed) * 1000:.1f} ms after the press and "
            f"took {(first[2] - first[1]) * 1000:.1f} ms; A p50/p99 before the kill: "
            f"{p(before_a, 50)}/{p(before_a, 99)} ms"
        )
    print(f"A's calls issued that were sent after the kill returned: {len(after)}")
    print(f"refused_since in the kill's answer: {body['refused_since']}")
    print(
        f"B p50/p99 before: {p(before_b, 50)}/{p(before_b, 99)} ms ({len(before_b)} calls); "
        f"during the kill: {p(during_b, 50)}/{p(during_b, 99)} ms ({len(during_b)}); "
        f"after: {p(after_b, 50)}/{p(after_b, 99)} ms ({len(after_b)}); "
        f"B refused: {b_errors}"
    )


async def main(n: int, duration: float) -> None:
    name = f"authority_bench_kill_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rpartition("/")[0] + "/" + name
    try:
        await migrate(url)
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                secret_key="bench-secret-key-with-at-least-32-characters!",  # noqa: S106
                data_dir=Path(data_dir),
                database_url=url,
                redis_url=REDIS_URL,
                redis_prefix=f"authority-bench:{uuid.uuid4().hex[:8]}:",
                auto_migrate=False,
                issuer="http://127.0.0.1:8400",
                containment_threshold=0,  # the bench's refusals are the kill's, not a threshold's
            )
            await run(settings, n, duration)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delegations", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    args = parser.parse_args()
    asyncio.run(main(max(args.delegations, EXCHANGING_A), args.duration))
