"""The resource server's check: what each way of checking a per-call token costs a tool.

One run starts a real authority (embedded, one worker, as bench/load.py does), mints
tokens from it, and measures one Starlette handler (bench/tool_server.py) on one uvicorn
worker, with wrk at ``--concurrency`` connections, behind each check in turn:

- no auth: the handler alone, the reference of every ratio;
- middleware, Bearer: ``AuthorityMiddleware``, local verification and the revocation feed;
- authlib RFC 9068: authlib's ``JWTBearerTokenValidator`` (EdDSA allowed);
- PyJWT: ``jwt.decode`` with the same claim checks;
- middleware, DPoP-bound: a DPoP-bound token, with a fresh proof on every request;
- middleware, introspect=True: every request introspected at the authority (RFC 7662),
  with one token sent again and again (concurrent checks of it share one introspection);
- introspect=True, a token per request: the same route with 2,000 tokens sent round robin,
  so no two checks in flight share one: every check is a request to the authority, as
  per-call tokens are in real traffic.

The authority signs with ``--alg`` (its default, RS256, RFC 9068's mandatory algorithm;
EdDSA and ES256 sign faster but an Ed25519 or P-256 verification costs a tool more than an
RSA one); the last row is cryptography's verification of one such token alone.

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
import base64
import contextlib
import functools
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

from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.jwk import JWKRegistry, OKPKey
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
    ("introspect=True, a token per request", "introspect", "tokens"),
)
#: Tokens minted for a run of the "tokens" row, sent round robin: with 32 in flight no two
#: concurrent checks ever hold the same token, so none shares another's introspection.
TOKENS_PER_RUN = 2000


@dataclass
class Run:
    result: Result
    server_us: float  # the tool server's CPU per request during the run
    ratio: float  # its rate over that of the no-auth run just before it (1 for no auth)


@dataclass
class Row:
    run: Run  # the run of median ratio (of median rate, for no auth)
    call_us: float  # in-process CPU of one call
    errors: int  # over every run
    ratios: list[float]  # of every run, in order


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

    async def bearer_lines(self, count: int) -> list[str]:
        """``count`` distinct Bearer tokens, minted 16 at a time."""
        gate = asyncio.Semaphore(16)

        async def one() -> str:
            async with gate:
                return f"Bearer {(await self.token(False)).value}"

        return list(await asyncio.gather(*(one() for _ in range(count))))

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
    parser.add_argument(
        "--alg", default="RS256", choices=["RS256", "EdDSA", "ES256"],
        help="the authority's token signing algorithm (default: its own, RS256)",
    )  # fmt: skip
    parser.add_argument("--no-wrk", action="store_true", help="the in-process costs alone")
    args = parser.parse_args()
    if args.no_wrk:
        args.rounds = 0
    elif shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: bash scripts/wrk.sh (make bench-tool runs it)")
    rows, raw_us = asyncio.run(run(args))
    report(rows, raw_us, args.alg)


async def run(args: argparse.Namespace) -> tuple[list[Row], float]:
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
            raw_us = raw_verify_cost(base, await minter.token(False), args.calls)
            if not args.rounds:
                for (name, _, _), cost in zip(ROWS, costs, strict=True):
                    print(f"{name}: {cost:.0f} µs in process")
                print(f"raw {args.alg} verify alone: {raw_us:.0f} µs")
                raise SystemExit(0)
            with contextlib.ExitStack() as servers:
                ports = [free_port() for _ in ROWS]
                procs = [
                    servers.enter_context(tool(c, tool_env, p))
                    for (_, c, _), p in zip(ROWS, ports, strict=True)
                ]
                urls = [f"http://127.0.0.1:{p}{tool_server.CALL_PATH}" for p in ports]
                runs: list[list[Run]] = [[] for _ in ROWS]
                proofs: dict[int, int] = {}

                async def once(i: int) -> tuple[Result, float]:
                    name, _, kind = ROWS[i]
                    return await load(name, kind, urls[i], procs[i].pid, minter, proofs, args)

                for turn in range(args.rounds):
                    for i in range(1, len(ROWS)):
                        # Each run right after its own no-auth run: the ratio of a pair is
                        # what a shared machine's busy moments disturb least.
                        reference = Run(*await once(0), 1.0)
                        result, server_us = await once(i)
                        runs[0].append(reference)
                        runs[i].append(Run(result, server_us, result.rate / reference.result.rate))
                        print(
                            f"round {turn + 1}: {ROWS[i][0]} {result.rate:.0f} req/s, "
                            f"no auth {reference.result.rate:.0f}",
                            flush=True,
                        )
    rows = [median_row(r, c, i == 0) for i, (r, c) in enumerate(zip(runs, costs, strict=True))]
    return rows, raw_us


def raw_verify_cost(issuer: str, token: AccessToken, calls: int) -> float:
    """In-process CPU of the signature check alone, µs: cryptography's verify of a token's
    signature with its public key, nothing else (the best of three batches)."""
    head, payload, signature = token.value.encode().split(b".")
    header = json.loads(base64.urlsafe_b64decode(head + b"==="))
    jwk = next(k for k in tool_server.jwks_of(issuer)["keys"] if k["kid"] == header["kid"])
    public: Any = JWKRegistry.import_key(jwk).get_op_key("verify")  # of the token's own alg
    signed, raw = head + b"." + payload, base64.urlsafe_b64decode(signature + b"===")
    if header["alg"] == "RS256":
        verify = functools.partial(public.verify, raw, signed, PKCS1v15(), SHA256())
    elif header["alg"] == "ES256":  # JWS carries r || s (RFC 7518 §3.4); cryptography DER
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        der = encode_dss_signature(r, s)
        verify = functools.partial(public.verify, der, signed, ECDSA(SHA256()))
    else:
        verify = functools.partial(public.verify, raw, signed)
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        for _ in range(calls):
            verify()
        best = min(best, (time.process_time() - began) / calls * 1e6)
    return best


def median_row(runs: list[Run], call_us: float, reference: bool) -> Row:
    """The run of median ratio (of median rate, for no auth); errors of every run."""
    ordered = sorted(runs, key=lambda run: run.result.rate if reference else run.ratio)
    errors = sum(run.result.errors for run in runs)
    return Row(ordered[len(ordered) // 2], call_us, errors, [run.ratio for run in runs])


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
    if kind == "tokens":
        began = cpu_seconds(pid)
        result = wrk_lines(name, url, await minter.bearer_lines(TOKENS_PER_RUN), args)
        spent = cpu_seconds(pid) - began
        result.single_use = False  # round robin: a token comes back once 2,000 have gone
        return result, spent / max(result.requests, 1) * 1e6
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


def report(rows: list[Row], raw_us: float, alg: str) -> None:
    reference = rows[0]
    print()
    print(
        f"| {'check':<36} | {'req/s':>6} | {'p50 ms':>6} | {'p99 ms':>6} | {'errors':>6} "
        f"| {'vs no auth':>10} | {'server CPU/req':>14} | {'in-process/call':>15} "
        f"| {'check alone':>11} |"
    )
    print("|" + "|".join(["---"] + ["---:"] * 8) + "|")
    for row, (name, _, _) in zip(rows, ROWS, strict=True):
        r = row.run.result
        ratio = f"{row.run.ratio:.2f}" if row is not reference else ""
        alone = f"{row.call_us - reference.call_us:.0f} µs" if row is not reference else ""
        print(
            f"| {name:<36} | {r.rate:>6.0f} | {r.p50_ms:>6.1f} | {r.p99_ms:>6.1f} "
            f"| {row.errors:>6} | {ratio:>10} | {row.run.server_us:>11.0f} µs "
            f"| {row.call_us:>12.0f} µs | {alone:>11} |"
        )
    print(f"| {'raw ' + alg + ' verify alone':<36} |" + " |" * 6 + f" {raw_us:>12.0f} µs | |")
    print()
    for row, (name, _, _) in zip(rows[1:], ROWS[1:], strict=True):
        print(f"{name}: ratio by round {', '.join(f'{ratio:.2f}' for ratio in row.ratios)}")


if __name__ == "__main__":
    main()
