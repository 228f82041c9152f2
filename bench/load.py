"""Load benchmark: concurrent agents against a running authority, measured with wrk.

For each backend (the embedded default, and PostgreSQL + Redis with several workers) it
starts ``authority serve``, registers one agent and delegation per concurrent
connection over the API, and measures with wrk (C, HTTP/1.1 keep-alive):

* exchange: RFC 8693 token exchanges, each with a fresh attestation signed beforehand
  (signing is the agent's work, not the authority's);
* introspection: RFC 7662 introspection of the tokens just issued, by their resource
  server (client_secret_basic);

and, in the same run, the baseline: a bare Starlette endpoint on the same server stack
(uvicorn, same worker count) that only signs one JWT of the same size (bench/baseline.py).
The ratio to that baseline is the headline figure.

    python -m bench.load [--backend embedded|postgres|both] [--concurrency 32]
                         [--duration 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

HERE = Path(__file__).resolve().parent
REPLAY = HERE / "wrk" / "replay.lua"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
AUDIENCE = "https://tools.bench.test"
TOOL = "github.issues.create"
TOKEN_LIFETIME = 60  # long enough for the introspection phase to reuse them


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    ok: int
    failed: int
    reused: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    single_use: bool = True  # bodies must not be sent twice (exchange attestations)

    @property
    def errors(self) -> int:
        reused = self.reused if self.single_use else 0
        return self.failed + reused + self.socket_errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], ready: str) -> Iterator[None]:
    proc = subprocess.Popen(  # noqa: S603
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_ready(ready)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def authority_env(backend: str, data_dir: str, port: int, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    env.update(
        AUTHORITY_CONFIG_FILE=os.devnull,
        AUTHORITY_DATA_DIR=data_dir,
        AUTHORITY_PORT=str(port),
        AUTHORITY_WORKERS=str(workers),
        AUTHORITY_SECRET_KEY="bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        AUTHORITY_LOG_LEVEL="warning",
        AUTHORITY_ACCESS_TOKEN_MAX_LIFETIME=str(TOKEN_LIFETIME),
        AUTHORITY_INTROSPECTION_RATE_PER_MINUTE=str(10**9),
    )
    if backend == "postgres":
        url = create_database("authority_bench")
        env.update(
            AUTHORITY_DATABASE_URL=url,
            AUTHORITY_REDIS_URL=REDIS,
            AUTHORITY_REDIS_PREFIX=f"bench:{url.rsplit('/', 1)[1]}:",
        )
    return env


def authority(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "authority.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


@dataclass
class Agent:
    id: str
    key: Ed25519PrivateKey
    kid: str
    credential: str


@dataclass
class World:
    base: str
    server_id: str
    server_secret: str
    agents: list[Agent]


def setup_world(base: str, admin: str, agents: int) -> World:
    with httpx.Client(base_url=base, timeout=30) as http:

        def post(path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
            response = http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

        owner = post("/v1/owners", admin, {"name": "bench-owner"})
        owner_key = post(f"/v1/owners/{owner['id']}/api-keys", admin, {})["api_key"]
        server = post("/v1/resource-servers", admin, {"name": "tools", "audience": AUDIENCE})
        post(
            "/v1/tools",
            admin,
            {
                "name": TOOL,
                "resource_server_id": server["id"],
                "actions": ["create"],
                "risk_tier": 1,
                "max_token_lifetime": TOKEN_LIFETIME,
            },
        )
        made = []
        for i in range(agents):
            key = Ed25519PrivateKey.generate()
            kid = f"k{i}"
            jwk = {**OKPAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}
            agent = post(
                "/v1/agents",
                owner_key,
                {"name": f"agent-{i}", "autonomy_level": 2, "jwks": {"keys": [jwk]}},
            )
            delegation = post(
                "/v1/delegations",
                owner_key,
                {
                    "agent_id": agent["id"],
                    "intent": "triage bugs in acme/web",
                    "scope": [{"tool": TOOL, "resources": ["acme/*"], "actions": ["create"]}],
                    "expires_in": 3600,
                },
            )
            made.append(Agent(agent["id"], key, kid, delegation["credential"]))
        return World(base, server["id"], server["client_secret"], made)


def exchange_bodies(world: World, count: int, issuer: str) -> list[str]:
    details = json.dumps(
        [{"type": "tool_call", "tool": TOOL, "resource": "acme/web", "action": "create"}]
    )
    now = int(time.time())
    bodies = []
    for i in range(count):
        agent = world.agents[i % len(world.agents)]
        attestation = jwt.encode(
            {
                "iss": agent.id,
                "sub": agent.id,
                "aud": issuer,
                "iat": now,
                "exp": now + 60,
                "jti": uuid.uuid4().hex,
            },
            agent.key,
            algorithm="EdDSA",
            headers={"kid": agent.kid},
        )
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": agent.credential,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "actor_token": attestation,
            "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "resource": AUDIENCE,
            "authorization_details": details,
            "expires_in": str(TOKEN_LIFETIME),
        }
        bodies.append(urllib.parse.urlencode(form))
    return bodies


def run_wrk(
    name: str,
    url: str,
    bodies: list[str],
    *,
    concurrency: int,
    duration: float,
    threads: int,
    authorization: str = "",
    tokens_out: str | None = None,
    single_use: bool = True,
) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".bodies", delete=False) as handle:
        handle.write("\n".join(bodies) + "\n")
        path = handle.name
    args = [path, str(threads), authorization]
    if tokens_out:
        args.append(tokens_out)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{round(duration)}s",
        "--timeout",
        "5s",
        "-s",
        str(REPLAY),
        url,
        "--",
        *args,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout  # noqa: S603
    os.unlink(path)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return Result(
        name=name,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        ok=data["ok"],
        failed=data["failed"],
        reused=data["reused"],
        socket_errors=data["socket_errors"],
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        single_use=single_use,
    )


def uvicorn_cmd(app: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def bench_authority(
    backend: str,
    args: argparse.Namespace,
    *,
    app: str = "authority.asgi:app",
    variant: str = "",
    introspection: bool = True,
) -> list[Result]:
    workers = 1 if backend == "embedded" else args.workers
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results = []
    with tempfile.TemporaryDirectory() as data_dir:
        env = authority_env(backend, data_dir, port, workers)
        if args.signing_alg is not None:
            env["AUTHORITY_SIGNING_ALG"] = args.signing_alg
        authority("migrate", env=env)
        admin = authority("admin", "bootstrap", env=env).split()[-1].strip()
        env["PYTHONPATH"] = str(HERE.parent)
        with process(uvicorn_cmd(app, port, workers), env, base + "/readyz"):
            world = setup_world(base, admin, args.concurrency)
            # A short run sizes the body file so that no attestation is ever sent twice.
            probe = run_wrk(
                "probe",
                base + "/oauth2/token",
                exchange_bodies(world, 20_000, base),
                concurrency=args.concurrency,
                duration=2,
                threads=args.threads,
            )
            needed = int(probe.rate * args.duration * 1.6) + 2000
            alg = f", {args.signing_alg}" if args.signing_alg is not None else ""
            label = f"{backend}{variant}{alg} ({workers} worker{'s' if workers > 1 else ''})"
            out = tempfile.mktemp(prefix="tokens")  # noqa: S306
            results.append(
                run_wrk(
                    f"exchange, {label}",
                    base + "/oauth2/token",
                    exchange_bodies(world, needed, base),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    threads=args.threads,
                    tokens_out=out,
                )
            )
            if args.one_agent:
                # One agent alone: the latency of a lone request (no batch to join).
                results.append(
                    run_wrk(
                        f"exchange, 1 agent, {label}",
                        base + "/oauth2/token",
                        # A lone request may run faster than the probe's 32 did: room
                        # for twice the probe's rate, so no attestation is sent twice.
                        exchange_bodies(world, int(probe.rate * args.one_agent * 2) + 2000, base),
                        concurrency=1,
                        duration=args.one_agent,
                        threads=1,
                    )
                )
            if not introspection:
                return results
            tokens: list[str] = []
            for i in range(args.threads):
                with contextlib.suppress(FileNotFoundError):
                    tokens += Path(f"{out}.{i}").read_text().split()
                    os.unlink(f"{out}.{i}")
            basic = base64.b64encode(f"{world.server_id}:{world.server_secret}".encode()).decode()
            bodies = [f"token={t}" for t in tokens[-5000:]] or ["token=none"]
            results.append(
                run_wrk(
                    f"introspection, {label}",
                    base + "/oauth2/introspect",
                    bodies,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    threads=args.threads,
                    authorization=f"Basic {basic}",
                    single_use=False,
                )
            )
            if args.one_agent:
                results.append(
                    run_wrk(
                        f"introspection, 1 agent, {label}",
                        base + "/oauth2/introspect",
                        bodies,
                        concurrency=1,
                        duration=args.one_agent,
                        threads=1,
                        authorization=f"Basic {basic}",
                        single_use=False,
                    )
                )
    return results


def bench_baseline(args: argparse.Namespace, workers: int, *, one_agent: bool = False) -> Result:
    port = free_port()
    cmd = uvicorn_cmd("bench.baseline:app", port, workers)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    base = f"http://127.0.0.1:{port}"
    with process(cmd, env, base + "/healthz"):
        # A body of an exchange request's size, so both sides parse the same bytes.
        body = "x=" + "a" * 1400
        agents = ", 1 agent" if one_agent else ""
        return run_wrk(
            f"baseline: sign one JWT{agents} ({workers} worker{'s' if workers > 1 else ''})",
            base + "/sign",
            [body] * 64,
            concurrency=1 if one_agent else args.concurrency,
            duration=args.one_agent if one_agent else args.duration,
            threads=1 if one_agent else args.threads,
            single_use=False,
        )


def create_database(prefix: str) -> str:
    """A fresh PostgreSQL database for one run; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    subprocess.run(  # noqa: S603
        ["psql", PG_ADMIN, "-qc", f'CREATE DATABASE "{name}"'],  # noqa: S607
        check=True,
    )
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def bench_floor(args: argparse.Namespace, workers: int) -> list[Result]:
    """bench/floor.py: only the I/O and cryptography the rules require, same stack."""
    from bench.floor import SETUP

    port = free_port()
    cmd = uvicorn_cmd("bench.floor:app", port, workers)
    database = create_database("authority_floor")
    subprocess.run(["psql", database, "-qc", SETUP], check=True)  # noqa: S603, S607
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE.parent),
        "FLOOR_DATABASE_URL": database,
        "FLOOR_REDIS_URL": REDIS,
    }
    base = f"http://127.0.0.1:{port}"
    plural = "s" if workers > 1 else ""
    with process(cmd, env, base + "/healthz"):
        return [
            run_wrk(
                f"floor: {what} ({workers} worker{plural})",
                f"{base}/floor/{what}",
                ["x=" + "a" * size] * 64,  # bodies of the real requests' sizes
                concurrency=args.concurrency,
                duration=args.duration,
                threads=args.threads,
                single_use=False,
            )
            for what, size in (("exchange", 1400), ("introspection", 700))
        ]


def report(results: list[Result], baselines: dict[str, Result]) -> None:
    print()
    print(
        f"{'scenario':<42} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'vs baseline':>11}"
    )
    for r in results:
        workers = "1" if "(1 worker)" in r.name else "n"
        if ", 1 agent" in r.name:  # a lone agent: its p50 against the lone baseline's
            base = baselines.get(workers + ":1")
            ratio = f"p50 {r.p50_ms / base.p50_ms:.1f}x" if base and base is not r else ""
        else:
            base = baselines.get(workers)
            ratio = f"{r.rate / base.rate:.0%}" if base and base is not r and base.rate else ""
        print(
            f"{r.name:<42} {r.rate:>8.0f} {r.p50_ms:>7.1f} {r.p95_ms:>7.1f} {r.p99_ms:>7.1f} "
            f"{r.errors:>6} {ratio:>11}"
        )


def ledger_cost(backends: list[str], args: argparse.Namespace) -> None:
    """Exchange throughput with the ledger, and of a build that writes grant rows only."""
    print(f"{'backend':<30} {'ledger req/s':>12} {'rows only req/s':>16} {'ledger cost':>11}")
    for backend in backends:
        with_ledger = bench_authority(backend, args, introspection=False)[0]
        rows_only = bench_authority(
            backend, args, app="bench.no_ledger:app", variant=", rows only", introspection=False
        )[0]
        cost = 1 - with_ledger.rate / rows_only.rate if rows_only.rate else float("nan")
        print(f"{backend:<30} {with_ledger.rate:>12.0f} {rows_only.rate:>16.0f} {cost:>11.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--one-agent",
        type=float,
        default=5,
        help="seconds of one agent alone (1 connection), exchange and baseline; 0: none",
    )
    parser.add_argument(
        "--signing-alg",
        choices=["RS256", "ES256", "EdDSA"],
        default=None,
        help="the authority's token signing algorithm (default: its own default, RS256); "
        "the baseline always signs one EdDSA JWT",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip bench/floor.py (the rules' unavoidable work alone, on PostgreSQL + Redis)",
    )
    parser.add_argument(
        "--ledger-cost",
        action="store_true",
        help="compare exchange throughput with the ledger and with grant rows only",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: bash scripts/wrk.sh (make bench runs it)")
    backends = ["embedded", "postgres"] if args.backend == "both" else [args.backend]
    if args.ledger_cost:
        ledger_cost(backends, args)
        return
    results: list[Result] = []
    baselines: dict[str, Result] = {}
    for backend in backends:
        workers = 1 if backend == "embedded" else args.workers
        key = "1" if workers == 1 else "n"
        if key not in baselines:
            baselines[key] = bench_baseline(args, workers)
            results.append(baselines[key])
            if args.one_agent:
                baselines[key + ":1"] = bench_baseline(args, workers, one_agent=True)
                results.append(baselines[key + ":1"])
        if backend == "postgres" and not args.no_floor:
            results.extend(bench_floor(args, workers))
        results.extend(bench_authority(backend, args))
    report(results, baselines)


if __name__ == "__main__":
    main()
