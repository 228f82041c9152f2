"""Middleware benchmark: a tool server's ``introspect=True`` route against its handler alone
(no token), in one run, with the CPU each costs the tool server and the authority.

It starts the authority (embedded, one worker), registers a resource server, its tool,
an agent and a delegation over the API (``bench/load.py``), mints one per-call token
(long-lived, so that wrk can send the same request again), starts ``bench/tool_server.py``
under uvicorn (one worker) and drives with wrk:

* ``/plain``: the handler, declared public: no token, no check;
* ``/introspected/acme/web``: the same handler behind a route declared ``introspect=True``:
  local verification, then RFC 7662 introspection at the authority on every request.

The CPU figures are each process's own (user + system, from /proc) over the wrk run,
divided by the requests answered.

    python -m bench.middleware_introspection [--concurrency 32] [--duration 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import httpx

from bench.gateway import run, serve
from bench.load import (
    AUDIENCE,
    HERE,
    Result,
    authority,
    authority_env,
    exchange_bodies,
    free_port,
    process,
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
    name: str, url: str, headers: dict[str, str], args: argparse.Namespace, pids: dict[str, int]
) -> tuple[Result, dict[str, float]]:
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    result = run(name, url, "GET", b"", headers, args)
    answered = max(result.requests, 1)
    cpu = {k: (cpu_seconds(p) - before[k]) / answered * 1000 for k, p in pids.items()}
    return result, cpu


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
            plain = {k: v for k, v in env.items() if not k.startswith("AUTHORITY_")}
            plain.update(
                BENCH_ISSUER=base,
                BENCH_AUDIENCE=AUDIENCE,
                BENCH_CLIENT_ID=world.server_id,
                BENCH_CLIENT_SECRET=world.server_secret,
            )
            cmd = uvicorn_cmd("bench.tool_server:app", tools_port, 1)
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
                ]
    baseline = rows[0][0].rate or 1.0
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
