"""The resource server's check: what each way of checking a per-call token costs a tool.

One run starts a real authority (embedded, one worker, as bench/load.py does), mints
tokens from it, and measures one Starlette handler (bench/tool_server.py) on one uvicorn
worker, with wrk at ``--concurrency`` connections, behind each check in turn:

- no auth: the handler alone, the reference of every ratio;
- middleware, Bearer: ``AuthorityMiddleware``, local verification and the revocation feed;
- authlib RFC 9068: authlib's ``JWTBearerTokenValidator`` (EdDSA allowed);
- PyJWT: ``jwt.decode`` with the same claim checks;
- middleware, DPoP-bound: a DPoP-bound token, with a fresh proof on every request;
- middleware, introspect=True: every request introspected at the authority (RFC 7662).

Every row is run ``--rounds`` times, the rows in turn (so that a busy moment of a shared
machine falls on all of them), each tool server started once; a row shows its run of
median rate: req/s, p50/p99, the ratio to no auth, and the tool server's CPU per request
during that run (from /proc). Errors count every run: non-2xx answers, socket errors, and
for DPoP a proof sent twice. Then the in-process CPU of one call (``time.process_time``
over ``--calls`` calls of the same ASGI app with no network, the best of three batches;
for introspection the tool server's own CPU, the authority answering over the network)
and that cost less the no-auth handler's: the check alone.

    python -m bench.tool_check [--duration 8] [--rounds 3] [--concurrency 32] [--calls 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import OKPKey
from jwt.algorithms import OKPAlgorithm

from authority.sdk.agent import AgentClient
from authority.sdk.core import AccessToken
from bench import tool_server
from bench.load import (
    AUDIENCE,
    HERE,
    Result,
    authority,
    authority_env,
    free_port,
    process,
    setup_world,
    uvicorn_cmd,
    wait_ready,
)

HEADERS = HERE / "wrk" / "headers.lua"
ROWS = (
    ("no auth", "none", "bearer"),
    ("middleware, Bearer", "middleware", "bearer"),
    ("authlib RFC 9068 validator", "authlib", "bearer"),
    ("PyJWT jwt.decode", "pyjwt", "bearer"),
    ("middleware, DPoP-bound", "middleware", "dpop"),
    ("middleware, introspect=True", "introspect", "bearer"),
)


@dataclass
class Row:
    result: Result  # the run of median rate
    server_us: float  # the tool server's CPU per request during that run
    call_us: float  # in-process CPU of one call
    errors: int  # over every run
    rates: list[float]  # req/s of every run, in order


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def tool(check: str, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    cmd = [*uvicorn_cmd("bench.tool_server:from_environment", port, 1), "--factory"]
    proc = subprocess.Popen(  # noqa: S603
        cmd, env={**env, "TOOL_CHECK": check}, stdout=subprocess.DEVNULL, text=True
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/ready")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wrk_lines(
    name: str, url: str, lines: list[str], args: argparse.Namespace, duration: float = 0
) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lines", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
    try:
        # run_wrk hands its file to replay.lua; this one is for headers.lua.
        seconds = round(duration or args.duration)
        cmd = ["wrk", f"-t{args.threads}", f"-c{args.concurrency}", f"-d{seconds}s", "--timeout"]
        cmd += ["5s", "-s", str(HEADERS), url, "--", handle.name, str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout  # noqa: S603
    finally:
        os.unlink(handle.name)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return Result(
        name, data["requests"], data["duration_us"] / 1e6, data["ok"], data["failed"],
        data["reused"], data["socket_errors"], data["p50_us"] / 1000, data["p95_us"] / 1000,
        data["p99_us"] / 1000, single_use=True,
    )  # fmt: skip


class Minter:
    """Tokens from the real authority for the benchmark's one tool call."""

    def __init__(self, base: str, agent: Any) -> None:
        private = {**OKPAlgorithm.to_jwk(agent.key, as_dict=True), "kid": agent.kid}
        key = OKPKey.import_key(private)
        self.bearer = AgentClient(base, agent.id, key, agent.credential)
        self.dpop = AgentClient(
            base, agent.id, key, agent.credential, dpop_key=OKPKey.generate_key("Ed25519")
        )

    async def token(self, dpop: bool) -> AccessToken:
        client = self.dpop if dpop else self.bearer
        return await client.token(
            tool_server.TOOL, tool_server.RESOURCE, tool_server.ACTION, audience=AUDIENCE,
            lifetime=60,
        )  # fmt: skip

    def lines(self, token: AccessToken, url: str, count: int) -> list[str]:
        if token.token_type != "DPoP":
            return [f"Bearer {token.value}"] * 16
        return [
            f"DPoP {token.value}\t{self.dpop.dpop_proof('POST', url, token.value)}"
            for _ in range(count)
        ]


async def asgi_cost(app: Any, url_host: str, lines: list[str], calls: int) -> float:
    """In-process CPU of one call of ``app``, µs, over ``calls`` calls."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scopes = []
    for line in lines:
        authorization, _, proof = line.partition("\t")
        headers = [(b"host", url_host.encode()), (b"authorization", authorization.encode())]
        if proof:
            headers.append((b"dpop", proof.encode()))
        scopes.append(
            {
                "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
                "path": tool_server.CALL_PATH, "raw_path": tool_server.CALL_PATH.encode(),
                "root_path": "", "query_string": b"", "headers": headers,
                "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 50000),
            }
        )  # fmt: skip
    warm = min(50, len(scopes) // 4)
    for scope in scopes[:warm]:
        await app(dict(scope), receive, send)
    began = time.process_time()
    timed = scopes[warm:] if len(scopes) > 16 else scopes * (calls // len(scopes) + 1)
    timed = timed[:calls]
    for scope in timed:
        await app(dict(scope), receive, send)
    spent = time.process_time() - began
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"in-process calls refused: {sorted(set(statuses))}")
    return spent / len(timed) * 1e6


async def in_process(
    check: str, issuer: str, world: Any, lines: Callable[[str], Awaitable[list[str]]], calls: int
) -> float:
    app = tool_server.build(check, issuer, AUDIENCE, world.server_id, world.server_secret)
    middleware = getattr(app, "app", None)
    gate = getattr(middleware, "gate", None)
    if gate is not None:
        gate.start()
        await asyncio.wait_for(middleware.feed.wait_ready(), 30)  # type: ignore[union-attr]
    try:
        host = "tools.bench.test"
        return await asgi_cost(app, host, await lines(f"http://{host}"), calls)
    finally:
        if gate is not None:
            await gate.stop()
            await gate.http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs of every row, in turn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=1500, help="in-process calls per batch")
    parser.add_argument("--alg", default="EdDSA", choices=["EdDSA", "ES256", "RS256"])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: bash scripts/wrk.sh (make bench-tool runs it)")
    rows = asyncio.run(run(args))
    report(rows)


async def run(args: argparse.Namespace) -> list[Row]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = authority_env("embedded", data_dir, port, 1)
        env["AUTHORITY_SIGNING_ALG"] = args.alg
        authority("migrate", env=env)
        admin = authority("admin", "bootstrap", env=env).split()[-1].strip()
        env["PYTHONPATH"] = str(HERE.parent)
        with process(uvicorn_cmd("authority.asgi:app", port, 1), env, base + "/readyz"):
            world = setup_world(base, admin, 1)
            minter = Minter(base, world.agents[0])
            tool_env = {
                **env,
                "TOOL_ISSUER": base,
                "TOOL_AUDIENCE": AUDIENCE,
                "TOOL_CLIENT_ID": world.server_id,
                "TOOL_CLIENT_SECRET": world.server_secret,
            }
            costs = [
                await call_cost(check, kind, base, world, minter, args) for _, check, kind in ROWS
            ]
            with contextlib.ExitStack() as servers:
                ports = [free_port() for _ in ROWS]
                procs = [
                    servers.enter_context(tool(c, tool_env, p))
                    for (_, c, _), p in zip(ROWS, ports, strict=True)
                ]
                runs: list[list[tuple[Result, float]]] = [[] for _ in ROWS]
                proofs: dict[int, int] = {}
                for turn in range(args.rounds):
                    for i, (name, _, kind) in enumerate(ROWS):
                        url = f"http://127.0.0.1:{ports[i]}{tool_server.CALL_PATH}"
                        runs[i].append(
                            await load(name, kind, url, procs[i].pid, minter, proofs, args)
                        )
                        print(
                            f"round {turn + 1}, {name}: {runs[i][-1][0].rate:.0f} req/s", flush=True
                        )
    return [median_row(r, cost) for r, cost in zip(runs, costs, strict=True)]


def median_row(runs: list[tuple[Result, float]], call_us: float) -> Row:
    """The run of median rate; errors are those of every run."""
    ordered = sorted(runs, key=lambda run: run[0].rate)
    result, server_us = ordered[len(ordered) // 2]
    errors = sum(run[0].errors for run in runs)
    return Row(result, server_us, call_us, errors, [run[0].rate for run in runs])


async def call_cost(
    check: str, kind: str, base: str, world: Any, minter: Minter, args: argparse.Namespace
) -> float:
    """In-process CPU of one call, µs: the best of three batches of ``--calls``."""
    dpop = kind == "dpop"
    calls = args.calls if check != "introspect" else max(args.calls // 5, 100)

    async def lines(url: str) -> list[str]:
        token = await minter.token(dpop)
        return minter.lines(token, url + tool_server.CALL_PATH, calls + 50)

    return min([await in_process(check, base, world, lines, calls) for _ in range(3)])


async def load(
    name: str,
    kind: str,
    url: str,
    pid: int,
    minter: Minter,
    proofs: dict[int, int],
    args: argparse.Namespace,
) -> tuple[Result, float]:
    """One wrk run against a tool server; its result and the server's CPU per request."""
    dpop = kind == "dpop"
    if dpop and pid not in proofs:
        # A short run sizes the proofs, each sent once (RFC 9449 §11.1: replay refused).
        token = await minter.token(dpop)
        probe = wrk_lines("probe", url, minter.lines(token, url, 8000), args, duration=2)
        proofs[pid] = int(probe.requests / probe.seconds * args.duration * 2) + 4000
    token = await minter.token(dpop)
    wanted = minter.lines(token, url, proofs.get(pid, 16))
    began = cpu_seconds(pid)
    result = wrk_lines(name, url, wanted, args)
    spent = cpu_seconds(pid) - began
    if not dpop:
        result.single_use = False  # one Bearer token, sent again and again
    return result, spent / max(result.requests, 1) * 1e6


def report(rows: list[Row]) -> None:
    reference = rows[0]
    print()
    print(
        f"| {'check':<30} | {'req/s':>6} | {'p50 ms':>6} | {'p99 ms':>6} | {'errors':>6} "
        f"| {'vs no auth':>10} | {'server CPU/req':>14} | {'in-process/call':>15} "
        f"| {'check alone':>11} |"
    )
    print("|" + "|".join(["---"] + ["---:"] * 8) + "|")
    for row, (name, _, _) in zip(rows, ROWS, strict=True):
        r = row.result
        ratio = f"{r.rate / reference.result.rate:.2f}" if row is not reference else ""
        alone = f"{row.call_us - reference.call_us:.0f} µs" if row is not reference else ""
        print(
            f"| {name:<30} | {r.rate:>6.0f} | {r.p50_ms:>6.1f} | {r.p99_ms:>6.1f} "
            f"| {row.errors:>6} | {ratio:>10} | {row.server_us:>11.0f} µs "
            f"| {row.call_us:>12.0f} µs | {alone:>11} |"
        )
    print()
    for row, (name, _, _) in zip(rows, ROWS, strict=True):
        print(f"{name}: req/s by round {', '.join(f'{rate:.0f}' for rate in row.rates)}")


if __name__ == "__main__":
    main()
