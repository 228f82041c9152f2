"""A floor for the load benchmark: only the work no implementation of the rules can skip.

Not the authority: bare Starlette endpoints on the same server stack as the baseline
(bench/baseline.py), with the authority's own parts (its PostgreSQL connection pool and
its Redis hot state, the same JOSE library and keys), doing per request exactly what the
product's invariants require and nothing else:

* ``/floor/introspection``: one SQL read by unique key (a token's state is read from
  the source of truth on every introspection) and one Redis round trip (the caller's
  shared rate window);
* ``/floor/exchange``: verify one Ed25519 JWT (the agent's attestation), one SQL read
  (the agent's, delegation's and tool's state), one Redis round trip (the attestation's
  single use), sign one JWT (the token), and one SQL write committed before answering
  (the grant and its ledger entry).

No parsing of OAuth parameters, no rules, no client authentication, no ledger schema:
the ratio of these to the baseline bounds what the authority itself can reach on the
same machine, with the same libraries.

Run: ``FLOOR_DATABASE_URL=... FLOOR_REDIS_URL=... uvicorn bench.floor:app --workers 2``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
from joserfc import jws, jwt
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.storage.hot import Claim, Count, RedisHotState
from authority.storage.pool import ConnectionPool
from authority.tokens.jose import registry

from .baseline import HEADER, KEY, REGISTRY, claims

#: Run once on a fresh database before the server starts (bench/load.py).
SETUP = (
    "CREATE TABLE floor_rows (id text PRIMARY KEY, n bigint, body text);"
    "INSERT INTO floor_rows VALUES ('known', 1, 'x')"
)
READ = "SELECT id, n, body FROM floor_rows WHERE id = $1"
WRITE = "INSERT INTO floor_rows (id, n, body) VALUES ($1, $2, $3)"

#: The agent's key and one attestation of the usual size, verified on every request.
AGENT_KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "agent"})
ATTESTATION = jwt.encode(
    {"alg": "EdDSA", "kid": "agent"},
    {"iss": "agt_floor", "sub": "agt_floor", "aud": "http://127.0.0.1", "jti": uuid.uuid4().hex},
    AGENT_KEY,
    registry=REGISTRY,
)
VERIFY = registry(["EdDSA"])

state: dict[str, Any] = {}


async def _connect() -> asyncpg.Connection:
    return await asyncpg.connect(os.environ["FLOOR_DATABASE_URL"])


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    pool = ConnectionPool(_connect, size=10, timeout=5.0)
    hot = RedisHotState(
        os.environ["FLOOR_REDIS_URL"], prefix=f"floor:{uuid.uuid4().hex}:", timeout=1.0
    )
    state.update(pool=pool, hot=hot)
    yield
    await hot.close()
    await pool.close()


async def _read() -> Any:
    pool: ConnectionPool = state["pool"]
    connection = await pool.acquire()
    try:
        return await connection.fetchrow(READ, "known")
    finally:
        pool.release(connection, healthy=True)


async def _write() -> None:
    pool: ConnectionPool = state["pool"]
    connection = await pool.acquire()
    try:
        await connection.execute(WRITE, uuid.uuid4().hex, 1, "x" * 600)
    finally:
        pool.release(connection, healthy=True)


async def introspection(request: Request) -> Response:
    await request.body()
    row = await _read()
    await state["hot"].apply([], [Count("rate:floor", 60)])
    return Response(orjson.dumps({"active": row is not None}), media_type="application/json")


async def exchange(request: Request) -> Response:
    await request.body()
    jws.deserialize_compact(ATTESTATION, AGENT_KEY, registry=VERIFY)
    await _read()
    await state["hot"].apply([Claim(f"jti:{uuid.uuid4().hex}", 60)], [])
    token = jwt.encode(HEADER, claims(), KEY, registry=REGISTRY)
    await _write()
    body = {"access_token": token, "token_type": "Bearer", "expires_in": 5}
    return Response(orjson.dumps(body), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/floor/introspection", introspection, methods=["POST"]),
        Route("/floor/exchange", exchange, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ],
    lifespan=lifespan,
)
