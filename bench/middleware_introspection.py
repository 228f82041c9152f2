"""Middleware benchmark: a tool server's ``introspect=True`` route against its handler alone
(no token), in one run, with the CPU each costs the tool server and the authority.

It starts the authority (embedded, one worker), registers a resource server, its tool,
an agent and a delegation over the API (``bench/load.py``), mints one per-call token
(long-lived, so that wrk can send the same request again), starts ``bench/introspected_tool.py``
under uvicorn (one worker) and drives with wrk:

* ``/plain``: the handler, declared public: no token, no check;
* ``/introspected/acme/web``: the same handler behind a route declared ``introspect=True``:
  local verification, then RFC 7662 introspection at the authority on every request,
  once with the same token on every request (concurrent checks share one introspection)
  and once with a token of its own for each of the 32 in flight (round robin over a
  couple of thousand minted beforehand: nothing to share, every check is a request).

The CPU figures are each process's own (user + system, from /proc) over the wrk run,
divided by the requests answered.

    python -m bench.middleware_introspection [--concurrency 32] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.gateway import run, serve
from bench.load import (
    AUDIENCE,
    HERE,
    Result,
    World,
    authority,
    authority_env,
    exchange_bodies,
    free_port,
    process,
    run_wrk,
    setup_world,
    uvicorn_cmd,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def listening_pid(port: int) -> int:
    """The pid of the process listening on ``port`` (uvicorn with one worker is one process)."""
    wanted = f"{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(":" + wanted) and parts[3] == "0A":
            inodes.add(parts[9])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(entry.name)
        except OSError:
            continue
    raise RuntimeError(f"nothing listens on {port}")


def measured(
    name: str,
    url: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    pids: dict[str, int],
    tokens: str | None = None,
) -> tuple[Result, dict[str, float]]:
    spy = None
    if os.environ.get("BENCH_PYSPY") and headers:
        # py-spy's samples of the tool server over this row, as collapsed stacks.
        output = f"{os.environ['BENCH_PYSPY_OUT']}.{len(headers['Authorization'])}"
        record = ["record", "--pid", str(pids["tools"]), "--format", "raw", "--output", output]
        spy = subprocess.Popen(  # noqa: S603
            [os.environ["BENCH_PYSPY"], *record, "--duration", str(round(args.duration))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    result = (
        run(name, url, "GET", b"", headers, args)
        if tokens is None
        else many(name, url, tokens, args)
    )
    if spy is not None:
        spy.wait(30)
    answered = max(result.requests, 1)
    cpu = {k: (cpu_seconds(p) - before[k]) / answered * 1000 for k, p in pids.items()}
    return result, cpu


def many(name: str, url: str, tokens: str, args: argparse.Namespace) -> Result:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.concurrency}", f"-d{round(args.duration)}s"]
    cmd += ["--timeout", "5s", "-s", str(HERE / "wrk" / "tokens.lua"), url, "--", tokens]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout  # noqa: S603
    data = json.loads(next(x for x in out.splitlines() if x.startswith("WRKJSON "))[8:])
    return Result(
        name=name,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        ok=data["ok"],
        failed=data["failed"],
        reused=0,
        socket_errors=data["socket_errors"],
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        single_use=False,
    )


def mint(base: str, world: World, folder: str, args: argparse.Namespace) -> str:
    """A couple of thousand tokens, by wrk at the token endpoint; the file they are in."""
    out = os.path.join(folder, "tokens")
    bodies = exchange_bodies(world, 4000, base)
    run_wrk(
        "mint", base + "/oauth2/token", bodies, concurrency=8, duration=2, threads=1, tokens_out=out
    )
    return out + ".0"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    port, tools_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = authority_env("embedded", tmp, port, 1)
        env.update(AUTHORITY_ISSUER=base)
        authority("migrate", env=env)
        admin = authority("admin", "bootstrap", env=env).split()[-1].strip()
        env["PYTHONPATH"] = str(HERE.parent)
        with process(uvicorn_cmd("authority.asgi:app", port, 1), env, base + "/readyz"):
            world = setup_world(base, admin, 1)
            body = exchange_bodies(world, 1, base)[0]
            issued = httpx.post(
                base + "/oauth2/token",
                content=body,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            issued.raise_for_status()
            value = issued.json()["access_token"]
            tokens = mint(base, world, tmp, args)
            minted = len(Path(tokens).read_text().split())
            plain = {k: v for k, v in env.items() if not k.startswith("AUTHORITY_")}
            plain.update(
                BENCH_ISSUER=base,
                BENCH_AUDIENCE=AUDIENCE,
                BENCH_CLIENT_ID=world.server_id,
                BENCH_CLIENT_SECRET=world.server_secret,
            )
            if os.environ.get("BENCH_TOOLS_PYTHONPATH"):
                # e.g. a folder whose sitecustomize hides a package, as on a smaller install
                plain["PYTHONPATH"] += os.pathsep + os.environ["BENCH_TOOLS_PYTHONPATH"]
            cmd = uvicorn_cmd("bench.introspected_tool:app", tools_port, 1)
            if os.environ.get("BENCH_TOOLS_PROFILE"):
                cmd[1:1] = ["-m", "cProfile", "-o", os.environ["BENCH_TOOLS_PROFILE"]]
            with serve(cmd, plain, tools_port):
                tools = f"http://127.0.0.1:{tools_port}"
                pids = {"tools": listening_pid(tools_port), "authority": listening_pid(port)}
                check = httpx.get(
                    tools + "/introspected/acme/web", headers={"Authorization": f"Bearer {value}"}
                )
                if check.status_code != 200:
                    sys.exit(f"the introspected route refused the token: {check.status_code}")
                rows = [
                    measured("handler alone (no token)", tools + "/plain", {}, args, pids),
                    measured(
                        "introspect=True",
                        tools + "/introspected/acme/web",
                        {"Authorization": f"Bearer {value}"},
                        args,
                        pids,
                    ),
                    measured(
                        "introspect=True, own tokens",
                        tools + "/introspected/acme/web",
                        {"Authorization": "many"},
                        args,
                        pids,
                        tokens,
                    ),
                ]
    baseline = rows[0][0].rate or 1.0
    print(f"{minted} tokens minted for the last row")
    print(f"{args.concurrency} connections, {args.duration:.0f} s each, 1 uvicorn worker")
    print(
        f"{'scenario':28} {'req/s':>8} {'ratio':>6} {'p99 ms':>7} {'errors':>6} "
        f"{'tools CPU ms/req':>17} {'authority CPU ms/req':>21}"
    )
    for result, cpu in rows:
        print(
            f"{result.name:28} {result.rate:8.0f} {result.rate / baseline:6.2f} "
            f"{result.p99_ms:7.1f} {result.errors:6d} {cpu['tools']:17.3f} "
            f"{cpu['authority']:21.3f}"
        )


if __name__ == "__main__":
    main()
