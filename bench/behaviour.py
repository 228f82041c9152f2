"""What the behaviour baseline costs the token exchange (RFC 8693), in CPU per exchange.

    .venv/bin/python -m bench.behaviour [--calls 400] [--rounds 3]

On an embedded authority (a SQLite file, in-process hot state, a frozen clock), it sets
up an agent over the management API and prints, in microseconds of ``time.process_time``
(the CPU this process spent, so the other tenants of a shared machine do not count):

* the rule alone (``behaviour.deviation``: one dict lookup and a few comparisons) and
  the subscriber that learns an issued call (``Baselines.observe``), over 100 000 calls;
* whole exchanges through the ASGI app, alternately with ``behaviour_enabled`` on and
  off (the rule skipped; the subscriber still runs), ``--calls`` per round, the median
  of ``--rounds``. The attestations are signed before the clock starts.

Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from authority import behaviour
from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.settings import Settings
from authority.storage.behaviour import AgentBaseline
from authority.storage.database import migrate
from tests.support import ISSUER, World

SECRET = "bench-secret-key-with-at-least-32-characters!!"
MICRO = 100_000


async def _exchanges(world: World, calls: int) -> float:
    forms = [world.exchange_form() for _ in range(calls)]
    started = time.process_time()
    for form in forms:
        answer = await world.client.post("/oauth2/token", data=form)
        if answer.status_code != 200 or "access_token" not in answer.json():
            raise SystemExit(f"exchange failed: {answer.text}")
    return (time.process_time() - started) / calls * 1e6


async def main(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            secret_key=SECRET,
            issuer=ISSUER,
            data_dir=Path(tmp),
            auto_migrate=False,
            behaviour_learning_calls=1,
            behaviour_learning_days=0,
        )
        await migrate(settings.sqlalchemy_url)
        clock = FrozenClock()
        services = build_services(settings, clock=clock)
        await start(services)
        try:
            app = create_app(settings, services=services)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
                world = await World(client, services, clock).setup()
                await world.delegate(max_calls=None, expires_in=86400)
                now = int(clock.now())
                tools = frozenset(f"tool.{n}" for n in range(20)) | {"github.issues.create"}
                services.baselines.load(
                    [AgentBaseline(world.agent_id, 10**9, 10, now - 10**7, now, tools)]
                )
                started = time.process_time()
                for _ in range(MICRO):
                    behaviour.deviation(services, world.agent_id, "github.issues.create", now)
                rule = (time.process_time() - started) / MICRO * 1e6
                started = time.process_time()
                for _ in range(MICRO):
                    services.baselines.observe("agt_other", "github.issues.create", now)
                observe = (time.process_time() - started) / MICRO * 1e6
                print(f"rule alone: {rule:.2f} us/call; observe: {observe:.2f} us/call")
                on: list[float] = []
                off: list[float] = []
                await _exchanges(world, 50)  # warm up (its usual rate is far above the bench's)
                for _ in range(rounds):
                    for enabled, figures in ((True, on), (False, off)):
                        services.settings = settings.model_copy(
                            update={"behaviour_enabled": enabled}
                        )
                        clock.advance(60)  # a new minute: no burst from the bench itself
                        figures.append(await _exchanges(world, calls))
                a, b = statistics.median(on), statistics.median(off)
                print(f"exchange, behaviour on:  {a:.0f} us CPU each (median of {rounds})")
                print(f"exchange, behaviour off: {b:.0f} us CPU each (median of {rounds})")
                print(f"difference: {a - b:+.0f} us ({(a - b) / b * 100:+.1f}%)")
        finally:
            await stop(services)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args()
    asyncio.run(main(ns.calls, ns.rounds))
